'use strict';
// The addon built by `npm ci` (node-gyp rebuild): see hugepages.c.
module.exports = require('./build/Release/hugepages.node');
