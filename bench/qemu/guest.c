/*
 * /init of the QEMU comparison guest (bench/qemu/README.md). Its mode comes
 * from the kernel command line, `guest=MODE,MIB[,RATE]`:
 *   sweep,MIB,RATE  increments a counter in the first and last 32-bit words of
 *                   every 4 KiB page of MIB, in address order, forever, paced to
 *                   RATE sweeps/s (unpaced when 0) like ferry's sweep workload
 *                   (src/guest/workloads/sweep.ts, pacer.ts: credit accrues
 *                   with the clock and is capped at 1 ms, so a throttled vCPU
 *                   does not burst to catch up);
 *   random,MIB      fills MIB with random words (ferry's fill 'random'), idles;
 *   text,MIB        fills MIB with text-like data (ferry's fill 'text': words
 *                   of the same list, each followed by a space), idles;
 *   zeroed,MIB      writes a word of every page, then zeroes it, idles.
 * It prints `ready` once its memory is written (sweep: after the first sweep),
 * then every 250 ms `P <guest ms> <pages written so far>` on the console.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS_PER_PAGE (PAGE / 4)
#define REPORT_NS 250000000ull

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static uint32_t xorshift32(uint32_t x) {
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

static uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

static const char *WORDS[] = {
  "the", "guest", "page", "memory", "migration", "dirty", "bitmap", "of", "and", "a", "to", "is", "in",
  "bandwidth", "downtime", "switchover", "source", "destination", "running", "paused", "zero", "send",
};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

static void line(const char *s) {
  (void)!write(1, s, strlen(s));
}

static void say(const char *fmt, unsigned long long a, unsigned long long b) {
  char line[96];
  int n = snprintf(line, sizeof line, fmt, a, b);
  if (n > 0) (void)!write(1, line, (size_t)n);
}

/* A page's contents depend only on the seed and the page number, as in ferry's fill. */
static void fill_page(uint8_t *p, uint64_t page, int text) {
  uint32_t seed = mix32(1u ^ 0x9e3779b9u);
  uint32_t rng = mix32(seed ^ (uint32_t)(page * 0x9e3779b1u));
  if (rng == 0) rng = 1;
  if (!text) {
    uint32_t *w = (uint32_t *)p;
    for (unsigned i = 0; i < WORDS_PER_PAGE; i++) w[i] = rng = xorshift32(rng);
    return;
  }
  unsigned at = 0;
  while (at < PAGE) {
    rng = xorshift32(rng);
    const char *word = WORDS[rng % NWORDS];
    size_t len = strlen(word);
    for (size_t i = 0; i < len && at < PAGE; i++) p[at++] = (uint8_t)word[i];
    if (at < PAGE) p[at++] = ' ';
  }
}

static void idle_forever(void) {
  for (;;) pause();
}

static void fill(uint8_t *mem, uint64_t pages, const char *mode) {
  int text = strcmp(mode, "text") == 0;
  int zeroed = strcmp(mode, "zeroed") == 0;
  /* zeroed: one word per page is enough to leave every page resident and
   * zero at the end, which is what the migration sees (whole-page memsets
   * of 8 GiB take minutes under TCG). */
  for (uint64_t i = 0; i < pages; i++) {
    if (zeroed) ((volatile uint32_t *)(mem + i * PAGE))[0] = 0xa5a5a5a5u;
    else fill_page(mem + i * PAGE, i, text);
  }
  if (zeroed) {
    for (uint64_t i = 0; i < pages; i++) ((volatile uint32_t *)(mem + i * PAGE))[0] = 0;
  }
  line("ready\n");
}

/* One sweep step after another, paced by a credit capped at 1 ms of pages. */
static void sweep(uint8_t *mem, uint64_t pages, double rate) {
  double per_sec = rate * (double)pages, credit = 0, cap = per_sec / 1000.0 + 1;
  uint64_t pos = 0, done = 0, last = now_ns(), next_report = last + REPORT_NS;
  uint32_t value = 1;
  int ready = 0;
  for (;;) {
    uint64_t t = now_ns();
    uint64_t n = 4096;
    if (rate > 0) {
      credit += (double)(t - last) * per_sec / 1e9;
      if (credit > cap) credit = cap;
      n = (uint64_t)credit;
      if (n > 4096) n = 4096;
      credit -= (double)n;
    }
    last = t;
    for (uint64_t i = 0; i < n; i++) {
      uint32_t *w = (uint32_t *)(mem + pos * PAGE);
      w[0] = value;
      w[WORDS_PER_PAGE - 1] = value;
      if (++pos == pages) {
        pos = 0;
        value++;
        if (!ready) {
          ready = 1;
          line("ready\n");
        }
      }
    }
    done += n;
    if (t >= next_report) {
      say("P %llu %llu\n", t / 1000000ull, done);
      next_report += REPORT_NS;
      if (next_report < t) next_report = t + REPORT_NS;
    }
    if (n == 0) {
      struct timespec d = {0, 200000}; /* 0.2 ms: a fifth of the credit's cap */
      nanosleep(&d, NULL);
    }
  }
}

int main(void) {
  mount("proc", "/proc", "proc", 0, NULL);
  char cmd[4096] = {0};
  int fd = open("/proc/cmdline", O_RDONLY);
  if (fd >= 0) {
    (void)!read(fd, cmd, sizeof cmd - 1);
    close(fd);
  }
  char *g = strstr(cmd, "guest=");
  char mode[16] = "";
  unsigned long long mib = 0;
  double rate = 0;
  if (g == NULL || sscanf(g + 6, "%15[a-z],%llu,%lf", mode, &mib, &rate) < 2 || mib == 0) {
    line("bad command line: want guest=MODE,MIB[,RATE]\n");
    idle_forever();
  }
  uint64_t pages = mib * 256ull;
  uint8_t *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    say("mmap of %llu MiB failed (%llu)\n", mib, 0);
    idle_forever();
  }
  say("mode %llu MiB, rate x1000 %llu\n", mib, (unsigned long long)(rate * 1000));
  if (strcmp(mode, "sweep") == 0) sweep(mem, pages, rate);
  if (strcmp(mode, "random") == 0 || strcmp(mode, "text") == 0 || strcmp(mode, "zeroed") == 0) fill(mem, pages, mode);
  else line("unknown mode\n");
  idle_forever();
  return 0;
}
