// Test helpers that run the real ffn-server and ffn-client binaries.
#ifndef FFN_TESTS_INTEGRATION_PROCESS_H_
#define FFN_TESTS_INTEGRATION_PROCESS_H_

#include <sys/types.h>

#include <cstdint>

#include <string>
#include <vector>

// FFN_UNDER_ASAN: defined in AddressSanitizer builds, whose quarantine keeps
// freed memory resident (memory figures say nothing there).
#if defined(__SANITIZE_ADDRESS__)
#define FFN_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FFN_UNDER_ASAN 1
#endif
#endif

namespace ffn::testing {

// A fresh temporary folder, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// ffn-server started on a free loopback port (port 0 + --port-file).
class ServerProcess {
 public:
  // Starts the server with `args` added after --address `address` and
  // --port-file.
  explicit ServerProcess(const std::vector<std::string>& args,
                         const std::string& address = "127.0.0.1:0");
  ~ServerProcess();  // SIGKILL if still running

  // Waits up to `timeout_s` for the port file. False if the server exited or
  // never became ready.
  bool WaitReady(double timeout_s = 60);
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  // Sends `signal` and waits up to `timeout_s` for the exit. Returns the exit
  // code, 128 + signal if killed by one, or -1 on time-out (then SIGKILL).
  int Stop(int signal, double timeout_s = 30);
  // Waits for an exit without signalling (a server that should fail to start).
  int WaitExit(double timeout_s = 60);
  // What the server printed so far.
  std::string Log() const;

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs ffn-client with `args` and waits for it.
CommandResult RunClient(const std::vector<std::string>& args);
// A memory figure of process `pid` in bytes from /proc/PID/status
// ("VmRSS": resident now; "VmHWM": the peak), or -1.
int64_t ProcessMemoryBytes(pid_t pid, const std::string& field);
// Reads a whole file ("" if missing).
std::string ReadFile(const std::string& path);

}  // namespace ffn::testing

#endif  // FFN_TESTS_INTEGRATION_PROCESS_H_
