#include "process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace ffn::testing {
namespace {

using Clock = std::chrono::steady_clock;

// Starts `binary args...` with stdout and stderr to `log_path`.
pid_t Spawn(const std::string& binary, const std::vector<std::string>& args,
            const std::string& log_path) {
  std::vector<std::string> argv_storage = {binary};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  pid_t pid = -1;
  if (posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

// waitpid with a time-out; the exit code or 128 + signal, -1 on time-out.
int WaitFor(pid_t pid, double timeout_s) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (r < 0 || Clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "ffn-test-XXXXXX").string();
  path_ = mkdtemp(pattern.data()) != nullptr ? pattern : std::string();
}

TempDir::~TempDir() {
  std::error_code ignored;
  if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

ServerProcess::ServerProcess(const std::vector<std::string>& args, const std::string& address) {
  std::vector<std::string> all = {"--address", address, "--port-file", dir_.File("port")};
  all.insert(all.end(), args.begin(), args.end());
  pid_ = Spawn(FFN_SERVER_BINARY, all, dir_.File("server.log"));
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    WaitFor(pid_, 10);
  }
}

bool ServerProcess::WaitReady(double timeout_s) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (Clock::now() < deadline) {
    const std::string text = ReadFile(dir_.File("port"));
    if (!text.empty()) {
      port_ = std::stoi(text);
      return port_ > 0;
    }
    int status = 0;
    if (pid_ <= 0 || waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

int ServerProcess::Stop(int signal, double timeout_s) {
  if (pid_ <= 0) return -1;
  kill(pid_, signal);
  const int code = WaitFor(pid_, timeout_s);
  if (code == -1) kill(pid_, SIGKILL);
  WaitFor(pid_, 10);
  pid_ = -1;
  return code;
}

int ServerProcess::WaitExit(double timeout_s) {
  if (pid_ <= 0) return -1;
  const int code = WaitFor(pid_, timeout_s);
  if (code != -1) pid_ = -1;
  return code;
}

std::string ServerProcess::Log() const { return ReadFile(dir_.File("server.log")); }

CommandResult RunClient(const std::vector<std::string>& args) {
  TempDir dir;
  CommandResult result;
  const pid_t pid = Spawn(FFN_CLIENT_BINARY, args, dir.File("client.log"));
  if (pid <= 0) return result;
  result.exit_code = WaitFor(pid, 300);
  if (result.exit_code == -1) {
    kill(pid, SIGKILL);
    WaitFor(pid, 10);
  }
  result.output = ReadFile(dir.File("client.log"));
  return result;
}

int64_t ProcessMemoryBytes(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  const std::string prefix = field + ":";
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size())) * 1024;
  }
  return -1;
}

}  // namespace ffn::testing
