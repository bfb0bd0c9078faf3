// Loads the embedded N-API addon that sends AF_UNIX datagrams (sd_notify and
// the journal's native protocol). Implementation: see the build/native owner.

/** Sends one datagram to an AF_UNIX socket path, or an abstract name starting with '@'. Throws on failure. */
export interface DatagramSender {
  send(socketPath: string, data: Buffer): void;
}
