// TCP keepalive as Envoy's upstream_connection_options.tcp_keepalive sets it:
// SO_KEEPALIVE on, then TCP_KEEPIDLE (keepalive_time), TCP_KEEPINTVL
// (keepalive_interval) and TCP_KEEPCNT (keepalive_probes), each only when
// given. Node's socket.setKeepAlive(enable, delay) reaches the first two
// options only, so the proxy sets all of them here; the getter reads them
// back from the kernel.
#include <napi.h>

#include <string>

#include "errno_error.h"

#ifdef __linux__
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

namespace {

#ifdef __linux__

void SetOption(Napi::Env env, int fd, int level, int name, int value, const char* what) {
  if (setsockopt(fd, level, name, &value, sizeof value) != 0) {
    throw ErrnoError(env, errno, std::string("setsockopt(") + what + ", " + std::to_string(value) +
                                     ") on fd " + std::to_string(fd));
  }
}

int GetOption(Napi::Env env, int fd, int level, int name, const char* what) {
  int value = 0;
  socklen_t len = sizeof value;
  if (getsockopt(fd, level, name, &value, &len) != 0) {
    throw ErrnoError(env, errno, std::string("getsockopt(") + what + ") on fd " + std::to_string(fd));
  }
  return value;
}

// An optional positive whole number of seconds (or probes) from the options object.
bool Positive(const Napi::Object& options, const char* key, int* out) {
  Napi::Value v = options.Get(key);
  if (v.IsUndefined() || v.IsNull()) return false;
  Napi::Env env = options.Env();
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("setTcpKeepalive: ") + key + " must be a number");
  const double raw = v.As<Napi::Number>().DoubleValue();
  if (!(raw >= 1 && raw <= 32767) || raw != static_cast<double>(static_cast<int>(raw))) {
    throw Napi::RangeError::New(env, std::string("setTcpKeepalive: ") + key +
                                         " must be a whole number from 1 to 32767, got " + v.ToString().Utf8Value());
  }
  *out = static_cast<int>(raw);
  return true;
}

#endif

Napi::Value SetTcpKeepalive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArgument(info, 0, "setTcpKeepalive(fd, options)");
  if (info.Length() < 2 || !info[1].IsObject()) {
    throw Napi::TypeError::New(env, "setTcpKeepalive(fd, options) needs an options object");
  }
#ifdef __linux__
  const Napi::Object options = info[1].As<Napi::Object>();
  int time = 0;
  int interval = 0;
  int probes = 0;
  const bool hasTime = Positive(options, "time", &time);
  const bool hasInterval = Positive(options, "interval", &interval);
  const bool hasProbes = Positive(options, "probes", &probes);
  SetOption(env, fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
  if (hasTime) SetOption(env, fd, IPPROTO_TCP, TCP_KEEPIDLE, time, "TCP_KEEPIDLE");
  if (hasInterval) SetOption(env, fd, IPPROTO_TCP, TCP_KEEPINTVL, interval, "TCP_KEEPINTVL");
  if (hasProbes) SetOption(env, fd, IPPROTO_TCP, TCP_KEEPCNT, probes, "TCP_KEEPCNT");
  return env.Undefined();
#else
  throw Napi::Error::New(env, "TCP keepalive intervals and probe counts are set only on Linux");
#endif
}

Napi::Value GetTcpKeepalive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArgument(info, 0, "getTcpKeepalive(fd)");
#ifdef __linux__
  Napi::Object o = Napi::Object::New(env);
  o.Set("enabled", Napi::Boolean::New(env, GetOption(env, fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE") != 0));
  o.Set("time", Napi::Number::New(env, GetOption(env, fd, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE")));
  o.Set("interval", Napi::Number::New(env, GetOption(env, fd, IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL")));
  o.Set("probes", Napi::Number::New(env, GetOption(env, fd, IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT")));
  return o;
#else
  throw Napi::Error::New(env, "TCP keepalive options are read only on Linux");
#endif
}

}  // namespace

void RegisterTcpKeepalive(Napi::Env env, Napi::Object exports) {
  exports.Set("setTcpKeepalive", Napi::Function::New(env, SetTcpKeepalive));
  exports.Set("getTcpKeepalive", Napi::Function::New(env, GetTcpKeepalive));
}
