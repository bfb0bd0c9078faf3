// Refuses an MQTT packet over a size limit from its fixed header, before any
// of its body is buffered. MQTT.js (mqtt-packet) collects a whole packet in
// memory before it parses it, and MQTT 3.1.1 has no way to tell a broker a
// maximum size: one 200 MB PUBLISH on the notify topic (any publisher with
// access to it, or a hostile broker) took the agent from 90 to 464 MB resident.
// The notifications are a few hundred bytes, so a small limit costs nothing.
//
// The limiter only follows the framing (fixed header: one type byte, then the
// remaining length as a variable byte integer of at most 4 bytes, MQTT 3.1.1
// section 2.2.3) and skips bodies; it never copies data.

/** What the broker sent that is refused: a declared packet size over the limit, or a malformed length. */
export interface PacketRefusal {
  /** The whole packet's declared size in bytes (header and body); null when the length field is malformed. */
  bytes: number | null;
}

/** Feeds the bytes of one connection, in order. */
export interface PacketLimiter {
  /** Returns a refusal once a packet over the limit (or a malformed length) starts in `chunk`; else null. */
  feed(chunk: Uint8Array): PacketRefusal | null;
}

/** The limit on one packet from the broker. */
export const MAX_MQTT_PACKET_BYTES = 64 * 1024;

/** Creates a limiter for one connection. */
export function createPacketLimiter(maxBytes: number): PacketLimiter {
  let state: 'type' | 'length' | 'body' = 'type';
  let length = 0;
  let lengthBytes = 0;
  let left = 0;
  return {
    feed(chunk) {
      let at = 0;
      while (at < chunk.length) {
        if (state === 'body') {
          const skip = Math.min(left, chunk.length - at);
          at += skip;
          left -= skip;
          if (left === 0) state = 'type';
          continue;
        }
        if (state === 'type') {
          at += 1;
          state = 'length';
          length = 0;
          lengthBytes = 0;
          continue;
        }
        const byte = chunk[at] as number;
        at += 1;
        length += (byte & 0x7f) * 128 ** lengthBytes;
        lengthBytes += 1;
        if ((byte & 0x80) !== 0) {
          if (lengthBytes === 4) return { bytes: null };
          continue;
        }
        const total = 1 + lengthBytes + length;
        if (total > maxBytes) return { bytes: total };
        left = length;
        state = left === 0 ? 'type' : 'body';
      }
      return null;
    },
  };
}
