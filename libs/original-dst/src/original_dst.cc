// The original destination of a TCP connection that iptables redirected
// (nat REDIRECT/DNAT): getsockopt(SOL_IP, SO_ORIGINAL_DST) for IPv4 and
// getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST) for IPv6, the calls Envoy's
// original_dst listener filter makes. A connection that was not redirected
// reports its local address, as Envoy does when there was no redirect.
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "errno_error.h"

#ifdef __linux__
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

// From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>,
// whose other contents do not compile as C++.
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif
#endif

namespace {

#ifdef __linux__

bool IsV4Mapped(const sockaddr_in6& a) { return IN6_IS_ADDR_V4MAPPED(&a.sin6_addr); }

std::string Ntop(int family, const void* addr) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (inet_ntop(family, addr, buf, sizeof buf) == nullptr) return std::string();
  return std::string(buf);
}

Napi::Object Result(Napi::Env env, const std::string& address, uint16_t port, const char* family,
                    bool redirected) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("address", Napi::String::New(env, address));
  o.Set("port", Napi::Number::New(env, port));
  o.Set("family", Napi::String::New(env, family));
  o.Set("redirected", Napi::Boolean::New(env, redirected));
  return o;
}

// The kernel has no NAT record for this connection: conntrack does not track
// it (ENOENT) or is not loaded at all (ENOPROTOOPT). Not an error.
bool NoRecord(int err) { return err == ENOENT || err == ENOPROTOOPT || err == EOPNOTSUPP; }

Napi::Value Lookup(Napi::Env env, int fd) {
  sockaddr_storage local{};
  socklen_t localLen = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &localLen) != 0) {
    throw ErrnoError(env, errno, "getsockname(fd " + std::to_string(fd) + ")");
  }

  if (local.ss_family == AF_INET) {
    const auto& l = *reinterpret_cast<const sockaddr_in*>(&local);
    sockaddr_in orig{};
    socklen_t len = sizeof orig;
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &orig, &len) != 0) {
      const int err = errno;
      if (!NoRecord(err)) {
        throw ErrnoError(env, err, "getsockopt(SOL_IP, SO_ORIGINAL_DST) on fd " + std::to_string(fd));
      }
      return Result(env, Ntop(AF_INET, &l.sin_addr), ntohs(l.sin_port), "IPv4", false);
    }
    const bool redirected = orig.sin_addr.s_addr != l.sin_addr.s_addr || orig.sin_port != l.sin_port;
    return Result(env, Ntop(AF_INET, &orig.sin_addr), ntohs(orig.sin_port), "IPv4", redirected);
  }

  if (local.ss_family == AF_INET6) {
    const auto& l = *reinterpret_cast<const sockaddr_in6*>(&local);
    if (IsV4Mapped(l)) {
      // An IPv4 connection on a dual-stack socket: conntrack knows it as IPv4.
      in_addr l4{};
      std::memcpy(&l4, &l.sin6_addr.s6_addr[12], sizeof l4);
      sockaddr_in orig{};
      socklen_t len = sizeof orig;
      if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &orig, &len) != 0) {
        const int err = errno;
        if (!NoRecord(err)) {
          throw ErrnoError(env, err, "getsockopt(SOL_IP, SO_ORIGINAL_DST) on fd " + std::to_string(fd));
        }
        return Result(env, Ntop(AF_INET, &l4), ntohs(l.sin6_port), "IPv4", false);
      }
      const bool redirected = orig.sin_addr.s_addr != l4.s_addr || orig.sin_port != l.sin6_port;
      return Result(env, Ntop(AF_INET, &orig.sin_addr), ntohs(orig.sin_port), "IPv4", redirected);
    }
    sockaddr_in6 orig{};
    socklen_t len = sizeof orig;
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &orig, &len) != 0) {
      const int err = errno;
      if (!NoRecord(err)) {
        throw ErrnoError(env, err,
                         "getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST) on fd " + std::to_string(fd));
      }
      return Result(env, Ntop(AF_INET6, &l.sin6_addr), ntohs(l.sin6_port), "IPv6", false);
    }
    const bool redirected =
        std::memcmp(&orig.sin6_addr, &l.sin6_addr, sizeof orig.sin6_addr) != 0 || orig.sin6_port != l.sin6_port;
    return Result(env, Ntop(AF_INET6, &orig.sin6_addr), ntohs(orig.sin6_port), "IPv6", redirected);
  }

  throw ErrnoError(env, EAFNOSUPPORT, "fd " + std::to_string(fd) + " is not an IPv4 or IPv6 socket");
}

#endif

Napi::Value GetOriginalDestination(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArgument(info, 0, "getOriginalDestination(fd)");
#ifdef __linux__
  return Lookup(env, fd);
#else
  throw Napi::Error::New(env, "SO_ORIGINAL_DST exists only on Linux (iptables); this platform has no "
                              "transparent capture");
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("getOriginalDestination", Napi::Function::New(env, GetOriginalDestination));
  RegisterTcpKeepalive(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(original_dst, Init)
