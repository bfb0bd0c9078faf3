// Stands in for the npm `readable-stream` package in the bundle: it is a copy
// of Node's own stream module (with polyfills of buffer, events, process and
// AbortController for browsers) that MQTT.js, mqtt-packet and bl use. Node's
// stream has the same classes; the copy cost the push channel about 4 MiB of
// resident memory (test/bench figure 12).
'use strict';
module.exports = require('node:stream');
