/**
 * One channel's flow control (several channels, destination: channel-
 * loaders.ts): the loader thread hands its connection's chunks to its
 * thread, which acknowledges the bytes it loaded; once the thread holds
 * MAX_HELD_BYTES or more not yet loaded, the socket is paused until it
 * catches up, so what waits in memory is bounded (the bound plus one
 * chunk) and TCP holds the source back.
 */
import type net from 'node:net';
import type { ChannelThread } from './channel-loader-thread.js';

/** Bytes a channel's thread may hold not yet loaded before its socket is paused: a few 512 KiB packets, so the thread never waits for the socket. */
export const MAX_HELD_BYTES = 4 * 1024 * 1024;

export class ChannelFlow {
  /** Bytes handed to the thread, not yet loaded; and loaded. */
  held = 0;
  loaded = 0;
  paused = false;

  constructor(private readonly socket: net.Socket, private readonly thread: ChannelThread, private readonly maxHeld: number) {}

  /** A chunk of the connection to the thread (which may take its buffer); the socket paused once the thread holds the bound. */
  data(chunk: Buffer): void {
    this.held += chunk.length;
    this.thread.data(chunk);
    if (this.held >= this.maxHeld && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  /** The thread loaded `bytes`: the socket resumed once it holds less than the bound. */
  acknowledged(bytes: number): void {
    this.held -= bytes;
    this.loaded += bytes;
    if (this.paused && this.held < this.maxHeld) {
      this.paused = false;
      this.socket.resume();
    }
  }
}
