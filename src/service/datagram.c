// Minimal N-API addon: send(path, data) sends ONE datagram to an AF_UNIX socket
// (sd_notify's NOTIFY_SOCKET, journald's /run/systemd/journal/socket). A path
// starting with '@' names an abstract socket. No libsystemd: it would tie each
// build to the target's libsystemd-dev; N-API 8 keeps one .node valid from
// Debian's node 18.19 (the armhf package) to the embedded 24.x. Non-blocking, so a stuck
// receiver costs an EAGAIN error instead of a frozen event loop.
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const struct { int no; const char *name; } CODES[] = {
  {ENOENT, "ENOENT"}, {ECONNREFUSED, "ECONNREFUSED"}, {EMSGSIZE, "EMSGSIZE"},
  {EAGAIN, "EAGAIN"}, {EACCES, "EACCES"}, {EPERM, "EPERM"}, {ENOBUFS, "ENOBUFS"},
  {ENOTDIR, "ENOTDIR"}, {EPROTOTYPE, "EPROTOTYPE"}, {ENOTSOCK, "ENOTSOCK"},
  {ENAMETOOLONG, "ENAMETOOLONG"}, {EINVAL, "EINVAL"}, {EMFILE, "EMFILE"},
};

// Throws Error("<op> <target>: <strerror> (<CODE>)") with .code = "E...", like Node's own errors.
static napi_value throw_errno(napi_env env, const char *op, const char *target, int no) {
  char text[300];
  const char *code = "EIO";
  for (size_t i = 0; i < sizeof CODES / sizeof CODES[0]; i++)
    if (CODES[i].no == no) code = CODES[i].name;
  napi_value err, msg, code_value;
  snprintf(text, sizeof text, "%s %s: %s (%s)", op, target, strerror(no), code);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value);
  napi_create_error(env, code_value, msg, &err);
  napi_throw(env, err);
  return NULL;
}

static napi_value send_datagram(napi_env env, napi_callback_info info) {
  size_t argc = 2, path_len = 0, data_len = 0;
  napi_value argv[2];
  struct sockaddr_un addr;
  void *data = NULL;
  bool is_buffer = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer) {
    napi_throw_type_error(env, NULL, "send(path: string, data: Buffer) expected");
    return NULL;
  }
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &path_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "send: path must be a string");
    return NULL;
  }
  if (path_len == 0 || path_len >= sizeof addr.sun_path)
    return throw_errno(env, "send to", path_len ? "a socket path over 107 bytes" : "an empty socket path", path_len ? ENAMETOOLONG : EINVAL);
  napi_get_value_string_utf8(env, argv[0], addr.sun_path, sizeof addr.sun_path, &path_len);
  napi_get_buffer_info(env, argv[1], &data, &data_len);
  socklen_t addr_len = offsetof(struct sockaddr_un, sun_path) + path_len + 1;
  bool abstract = addr.sun_path[0] == '@';
  if (abstract) {  // abstract: leading NUL, length without a trailing NUL
    addr.sun_path[0] = '\0';
    addr_len--;
    // qemu-user adds 1 to an AF_UNIX length whose next byte is NUL; a non-NUL byte past
    // addr_len (never read by the kernel) keeps the name exact when tests run under qemu.
    addr.sun_path[path_len] = '\x7f';  // path_len <= 107 was checked above
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, "socket for", "AF_UNIX datagrams", errno);
  ssize_t sent = sendto(fd, data, data_len, MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len);
  int saved = errno;
  close(fd);
  if (abstract) { addr.sun_path[0] = '@'; addr.sun_path[path_len] = '\0'; }
  if (sent < 0) return throw_errno(env, "send to", addr.sun_path, saved);
  return NULL;
}

// trim(): gives the C heap's free pages back to the system (glibc malloc_trim):
// the pipe buffers of a job with much output are freed into the C heap, which
// glibc keeps mapped. Returns whether this libc can (false on musl).
static napi_value trim_heap(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
#ifdef __GLIBC__
  malloc_trim(0);
  napi_get_boolean(env, true, &result);
#else
  napi_get_boolean(env, false, &result);
#endif
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "send", NAPI_AUTO_LENGTH, send_datagram, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "send", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "trim", NAPI_AUTO_LENGTH, trim_heap, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "trim", fn) != napi_ok) return NULL;
  return exports;
}
