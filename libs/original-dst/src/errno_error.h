// An Error for a failed system call: the call named, strerror's text, and
// Node's usual `code` (EBADF…) and `errno` properties.
#pragma once

#include <napi.h>

#include <cerrno>
#include <cstring>
#include <string>

inline Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
  const char* code = nullptr;
  switch (err) {
    case EBADF: code = "EBADF"; break;
    case ENOTSOCK: code = "ENOTSOCK"; break;
    case ENOTCONN: code = "ENOTCONN"; break;
    case EINVAL: code = "EINVAL"; break;
    case EFAULT: code = "EFAULT"; break;
    case EAFNOSUPPORT: code = "EAFNOSUPPORT"; break;
    case ENOPROTOOPT: code = "ENOPROTOOPT"; break;
    default: break;
  }
  if (code != nullptr) e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

// A file descriptor argument: a non-negative integer, or a TypeError/RangeError naming the call.
inline int FdArgument(const Napi::CallbackInfo& info, size_t index, const std::string& call) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsNumber()) {
    throw Napi::TypeError::New(env, call + " needs a file descriptor number");
  }
  const double raw = info[index].As<Napi::Number>().DoubleValue();
  if (!(raw >= 0 && raw <= 2147483647.0) || raw != static_cast<double>(static_cast<int>(raw))) {
    throw Napi::RangeError::New(env, call + ": fd must be a non-negative integer, got " +
                                         info[index].ToString().Utf8Value());
  }
  return static_cast<int>(raw);
}

// Registers the TCP keepalive functions (tcp_keepalive.cc) on the module's exports.
void RegisterTcpKeepalive(Napi::Env env, Napi::Object exports);
