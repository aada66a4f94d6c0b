#include "runtime/group.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <thread>
#include <tuple>

#include "runtime/model.h"

#ifdef VEX_WITH_CUDA
#include <cuda_runtime.h>
#include <nccl.h>

#include "runtime/forward_cuda.h"
#endif

namespace vex {
namespace {

Group* g_group = nullptr;

// Frames on a pipe: a 64-bit length, then the bytes.
bool write_all(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n) {
    const ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w, n -= static_cast<size_t>(w);
  }
  return true;
}
bool read_all(int fd, void* p, size_t n) {
  char* c = static_cast<char*>(p);
  while (n) {
    const ssize_t r = ::read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r, n -= static_cast<size_t>(r);
  }
  return true;
}
bool write_frame(int fd, const std::string& s) {
  const uint64_t n = s.size();
  return write_all(fd, &n, sizeof n) && write_all(fd, s.data(), s.size());
}
bool read_frame(int fd, std::string* s) {
  uint64_t n = 0;
  if (!read_all(fd, &n, sizeof n) || n > (uint64_t(1) << 34)) return false;
  s->resize(n);
  return read_all(fd, s->data(), n);
}
// A status as a frame: its code, then its message.
[[maybe_unused]] std::string status_frame(const absl::Status& st) {
  Wire w;
  w.put<int32_t>(static_cast<int32_t>(st.code()));
  w.put_string(std::string(st.message()));
  return w.bytes();
}
absl::Status read_status(int fd, int rank) {
  Wire w;
  if (!read_frame(fd, &w.bytes()))
    return absl::UnavailableError(absl::StrCat("rank ", rank, " of the GPU group has exited"));
  int32_t code = 0;
  std::string msg;
  VEX_RETURN_IF_ERROR(w.get(&code));
  VEX_RETURN_IF_ERROR(w.get_string(&msg));
  if (code == 0) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(code), absl::StrCat("rank ", rank, ": ", msg));
}

// What every rank's process needs before it joins a group.
[[maybe_unused]] void prepare_process() {
  signal(SIGPIPE, SIG_IGN);  // a peer that died is an error on its channel, not a signal
  // NVLink multicast (NVLS) off unless asked for: vex's collectives are small, and on shared
  // hosts a program using it can take the GPUs out of service (the GPU machine's notes).
  setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);
}

#ifdef VEX_WITH_CUDA
// A worker's state: the models rank 0 made engines over, loaded again here from the same files
// (the page cache holds them once), and the engines by id.
struct WorkerState {
  std::map<std::tuple<std::string, std::string, bool>, std::unique_ptr<Model>> models;
  std::map<int, std::unique_ptr<CudaEngine>> engines;
};

absl::Status serve_message(Group& g, WorkerState& w, Wire& msg) {
  uint8_t op = 0;
  int32_t id = 0;
  VEX_RETURN_IF_ERROR(msg.get(&op));
  VEX_RETURN_IF_ERROR(msg.get(&id));
  if (op == Group::kMake) {
    std::string dir, experts;
    uint8_t mask = 0;
    int32_t max_ctx = 0, n_seqs = 0, tp = 0, ep = 0;
    VEX_RETURN_IF_ERROR(msg.get_string(&dir));
    VEX_RETURN_IF_ERROR(msg.get_string(&experts));
    VEX_RETURN_IF_ERROR(msg.get(&mask));
    VEX_RETURN_IF_ERROR(msg.get(&max_ctx));
    VEX_RETURN_IF_ERROR(msg.get(&n_seqs));
    VEX_RETURN_IF_ERROR(msg.get(&tp));
    VEX_RETURN_IF_ERROR(msg.get(&ep));
    auto& model = w.models[{dir, experts, mask != 0}];
    if (!model) {
      LoadOptions load;
      load.experts = experts;
      load.mask_pruned = mask != 0;
      VEX_ASSIGN_OR_RETURN(model, load_model(dir, load));
    }
    VEX_ASSIGN_OR_RETURN(auto e, CudaEngine::create(model->config(), model->weights, max_ctx,
                                                    n_seqs, nullptr, {&g, id, tp, ep}));
    w.engines[id] = std::move(e);
    return absl::OkStatus();
  }
  auto it = w.engines.find(id);
  if (it == w.engines.end())
    return absl::InternalError(absl::StrCat("no engine ", id, " on rank ", g.rank()));
  if (op == Group::kDrop) {
    w.engines.erase(it);
    return absl::OkStatus();
  }
  if (op == Group::kCall) return it->second->replay(msg);
  return absl::InternalError(absl::StrCat("unknown group message ", int(op)));
}
#endif

}  // namespace

Group* Group::get() { return g_group; }

int Group::nccl_version() {
  int v = 0;
#ifdef VEX_WITH_CUDA
  ncclGetVersion(&v);
#endif
  return v;
}

absl::Status Group::launch(int n) {
  if (n < 1) return absl::InvalidArgumentError(absl::StrCat("--gpus must be >= 1, got ", n));
  if (n == 1) return absl::OkStatus();
  if (g_group) return absl::FailedPreconditionError("the GPU group is already launched");
#ifndef VEX_WITH_CUDA
  return absl::UnimplementedError("this build of vex has no CUDA engine (nvcc was not found)");
#else
  prepare_process();
  auto* g = new Group;
  g->size_ = n;
  for (int r = 1; r < n; ++r) {
    int down[2], up[2];
    if (pipe2(down, O_CLOEXEC) || pipe2(up, O_CLOEXEC))
      return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
    const pid_t pid = fork();
    if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
    if (pid == 0) {  // rank r
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() == 1) _exit(1);
      for (int fd : g->to_) close(fd);
      for (int fd : g->from_) close(fd);
      close(down[1]), close(up[0]);
      g->to_.clear(), g->from_.clear();
      g->rank_ = r, g->device_ = r, g->in_ = down[0], g->out_ = up[1];
      g_group = g;
      _exit(g->serve() ? 0 : 1);
    }
    close(down[0]), close(up[1]);
    g->to_.push_back(down[1]), g->from_.push_back(up[0]);
    g->pids_.push_back(pid);
  }
  return start(g, /*device=*/0, /*local=*/n);
#endif
}

namespace {

// The launcher's environment: torchrun's names, else Open MPI's; -1 where unset.
int env_int(std::initializer_list<const char*> names) {
  for (const char* name : names)
    if (const char* v = getenv(name); v && *v) {
      char* end = nullptr;
      const long x = strtol(v, &end, 10);
      return *end == 0 && x >= 0 && x < (1 << 20) ? static_cast<int>(x) : -2;
    }
  return -1;
}

// A TCP connection to host:port, retried for `seconds` (rank 0 may not be listening yet).
[[maybe_unused]] absl::StatusOr<int> dial(const std::string& host, const std::string& port, int seconds) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC, hints.ai_socktype = SOCK_STREAM;
  if (int e = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); e != 0)
    return absl::InvalidArgumentError(
        absl::StrCat("MASTER_ADDR ", host, ":", port, ": ", gai_strerror(e)));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (true) {
    for (addrinfo* a = res; a; a = a->ai_next) {
      const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        freeaddrinfo(res);
        return fd;
      }
      close(fd);
    }
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  freeaddrinfo(res);
  return absl::UnavailableError(absl::StrCat("rank 0 did not answer at ", host, ":", port,
                                             " within ", seconds, " s"));
}

// Rank 0's listening socket on host:port.
[[maybe_unused]] absl::StatusOr<int> listen_on(const std::string& host, const std::string& port) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC, hints.ai_socktype = SOCK_STREAM, hints.ai_flags = AI_PASSIVE;
  if (int e = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); e != 0)
    return absl::InvalidArgumentError(
        absl::StrCat("MASTER_ADDR ", host, ":", port, ": ", gai_strerror(e)));
  std::string why = "no address";
  for (addrinfo* a = res; a; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 64) == 0) {
      freeaddrinfo(res);
      return fd;
    }
    why = strerror(errno);
    close(fd);
  }
  freeaddrinfo(res);
  return absl::UnavailableError(absl::StrCat("rank 0 cannot listen on ", host, ":", port, ": ", why));
}

}  // namespace

absl::Status Group::begin(int n) {
  const int world = launcher_size();
  if (world < 1)
    return absl::InvalidArgumentError("the launcher's WORLD_SIZE is not a count of processes");
  if (world == 1) return launch(n);
  if (n != 1 && n != world)
    return absl::InvalidArgumentError(absl::StrCat(
        n, " GPUs asked for, but the launcher started ", world, " processes (WORLD_SIZE)"));
  return join();
}

int Group::launcher_size() {
  const int n = env_int({"WORLD_SIZE", "OMPI_COMM_WORLD_SIZE"});
  return n == -1 ? 1 : n;  // -2: not a number
}

absl::Status Group::join() {
  const int n = env_int({"WORLD_SIZE", "OMPI_COMM_WORLD_SIZE"});
  const int rank = env_int({"RANK", "OMPI_COMM_WORLD_RANK"});
  int device = env_int({"LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"});
  if (n == -1 || n == 1) return absl::OkStatus();
  if (n < 1) return absl::InvalidArgumentError("the launcher's WORLD_SIZE is not a count");
  if (rank < 0 || rank >= n)
    return absl::InvalidArgumentError(
        absl::StrCat("the launcher's RANK must be in [0, WORLD_SIZE = ", n, ")"));
  if (device < 0) device = rank;
  if (g_group) return absl::FailedPreconditionError("the GPU group is already launched");
#ifndef VEX_WITH_CUDA
  return absl::UnimplementedError("this build of vex has no CUDA engine (nvcc was not found)");
#else
  prepare_process();
  // MASTER_PORT itself is taken by torchrun's own store: vex's rendezvous is the port after it
  // (VEX_GROUP_PORT, when set).
  const char* addr = getenv("MASTER_ADDR");
  const int master = env_int({"MASTER_PORT"});
  const int own = env_int({"VEX_GROUP_PORT"});
  const std::string host = addr && *addr ? addr : "127.0.0.1";
  const std::string service = std::to_string(own > 0 ? own : (master > 0 ? master : 29500) + 1);
  auto* g = new Group;
  g->size_ = n, g->rank_ = rank, g->device_ = device;
  auto abandon = [&](absl::Status st) {  // before start(): nothing but sockets to let go
    delete g;
    return st;
  };
  if (rank > 0) {  // connect, say which rank, then serve rank 0's calls; exit when it closes
    auto fd = dial(host, service, 120);
    if (!fd.ok()) return abandon(fd.status());
    g->in_ = *fd, g->out_ = dup(*fd);
    const int32_t r = rank;
    if (!write_frame(*fd, std::string(reinterpret_cast<const char*>(&r), sizeof r)))
      return abandon(absl::UnavailableError("rank 0 closed the connection"));
    g_group = g;
    const bool ok = g->serve();
    fflush(nullptr);
    _exit(ok ? 0 : 1);
  }
  auto lfd = listen_on(host, service);
  if (!lfd.ok()) return abandon(lfd.status());
  g->to_.assign(n - 1, -1), g->from_.assign(n - 1, -1);
  for (int joined = 1; joined < n; ++joined) {
    pollfd p{*lfd, POLLIN, 0};
    if (poll(&p, 1, 120'000) <= 0) {
      close(*lfd);
      return abandon(absl::DeadlineExceededError(absl::StrCat(
          n - joined, " of the launcher's ranks did not connect to ", host, ":", service,
          " within 120 s")));
    }
    const int fd = accept4(*lfd, nullptr, nullptr, SOCK_CLOEXEC);
    std::string who;
    int32_t r = -1;
    if (fd >= 0 && read_frame(fd, &who) && who.size() == sizeof r) std::memcpy(&r, who.data(), sizeof r);
    if (r < 1 || r >= n || g->to_[r - 1] >= 0) {
      if (fd >= 0) close(fd);
      close(*lfd);
      return abandon(
          absl::InvalidArgumentError(absl::StrCat("a process joined as rank ", r, " of ", n)));
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    g->to_[r - 1] = fd, g->from_[r - 1] = dup(fd);
  }
  close(*lfd);
  return start(g, device, /*local=*/0);
#endif
}

#ifdef VEX_WITH_CUDA
absl::Status Group::start(Group* g, int device, int local) {
  const int n = g->size_;
  g_group = g;
  auto fail = [&](absl::Status st) {  // the workers read the end of their channel and exit
    for (int& fd : g->to_) close(fd), fd = -1;
    for (int pid : g->pids_) waitpid(pid, nullptr, 0);
    g->pids_.clear();
    g_group = nullptr;
    delete g;
    return st;
  };
  // Every rank has its device before any waits in NCCL for a rank that could not start.
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < std::max(local, device + 1)) {
    cudaGetLastError();
    return fail(absl::FailedPreconditionError(
        local ? absl::StrCat(n, " GPUs asked for, ", devices, " visible (CUDA_VISIBLE_DEVICES)")
              : absl::StrCat("rank 0: no CUDA device ", device, " (", devices, " visible)")));
  }
  for (int r = 1; r < n; ++r)
    if (absl::Status st = read_status(g->from_[r - 1], r); !st.ok()) return fail(st);
  ncclUniqueId id;
  if (ncclResult_t e = ncclGetUniqueId(&id); e != ncclSuccess)
    return fail(absl::InternalError(absl::StrCat("ncclGetUniqueId: ", ncclGetErrorString(e))));
  const std::string id_bytes(id.internal, sizeof id.internal);
  for (int fd : g->to_)
    if (!write_frame(fd, id_bytes)) return fail(absl::UnavailableError("a GPU worker exited"));
  if (cudaSetDevice(device) != cudaSuccess)
    return fail(absl::InternalError(absl::StrCat("cudaSetDevice(", device, ") failed")));
  ncclComm_t comm;
  if (ncclResult_t e = ncclCommInitRank(&comm, n, id, 0); e != ncclSuccess)
    return fail(absl::InternalError(absl::StrCat("ncclCommInitRank: ", ncclGetErrorString(e))));
  g->comm_ = comm;
  for (int r = 1; r < n; ++r)
    if (absl::Status st = read_status(g->from_[r - 1], r); !st.ok()) return fail(st);
  // At exit rank 0 closes the pipes, and the workers, reading the end, free their engines and
  // exit; one that does not within 10 s is killed.
  std::atexit([] {
    if (Group* grp = g_group; grp && grp->rank_ == 0) delete grp;
  });
  return absl::OkStatus();
}
#endif

Group::~Group() {
  for (int fd : to_)
    if (fd >= 0) close(fd);
  for (int fd : from_)
    if (fd >= 0) close(fd);
  for (int fd : {in_, out_})
    if (fd >= 0) close(fd);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (int pid : pids_) {
    while (waitpid(pid, nullptr, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (g_group == this) g_group = nullptr;
}

bool Group::serve() {
#ifdef VEX_WITH_CUDA
  // Start: the device, then the communicator with the id rank 0 sends.
  absl::Status st = cudaSetDevice(device_) == cudaSuccess
                        ? absl::OkStatus()
                        : absl::FailedPreconditionError(absl::StrCat("no CUDA device ", device_));
  if (!write_frame(out_, status_frame(st)) || !st.ok()) return false;
  std::string id_bytes;
  if (!read_frame(in_, &id_bytes)) return false;
  ncclUniqueId id;
  std::memcpy(id.internal, id_bytes.data(), std::min(id_bytes.size(), sizeof id.internal));
  ncclComm_t comm;
  const ncclResult_t e = ncclCommInitRank(&comm, size_, id, rank_);
  st = e == ncclSuccess ? absl::OkStatus()
                        : absl::InternalError(absl::StrCat("ncclCommInitRank: ",
                                                           ncclGetErrorString(e)));
  if (!write_frame(out_, status_frame(st)) || !st.ok()) return false;
  comm_ = comm;
  WorkerState state;
  for (Wire msg; read_frame(in_, &msg.bytes()); msg = Wire()) {
    st = serve_message(*this, state, msg);
    if (!write_frame(out_, status_frame(st))) break;
  }
  // Rank 0 is gone. Engines it never dropped would leave their NCCL windows in a collective
  // call it cannot join: they are left to the process's exit, as is the communicator.
  if (!state.engines.empty()) {
    for (auto& entry : state.engines) entry.second.release();
    return true;
  }
  ncclCommDestroy(comm);
  return true;
#else
  return false;
#endif
}

absl::StatusOr<std::unique_ptr<Engine>> make_group_engine(const Model& model, int max_ctx,
                                                          int n_seqs, Parallel p) {
#ifndef VEX_WITH_CUDA
  return absl::UnimplementedError("this build of vex has no CUDA engine (nvcc was not found)");
#else
  Group* g = Group::get();
  if (!g) return absl::FailedPreconditionError("no GPU group (Group::launch)");
  const int id = g->next_engine_id();
  Wire msg;
  msg.put<uint8_t>(Group::kMake);
  msg.put<int32_t>(id);
  msg.put_string(model.dir);
  msg.put_string(model.manifest_path);
  msg.put<uint8_t>(model.mask_pruned);
  for (int v : {max_ctx, n_seqs, p.tp, p.ep}) msg.put<int32_t>(v);
  std::unique_ptr<CudaEngine> e;
  absl::Status st = g->call(msg, [&]() -> absl::Status {
    VEX_ASSIGN_OR_RETURN(e, CudaEngine::create(model.config(), model.weights, max_ctx, n_seqs,
                                               nullptr, {g, id, p.tp, p.ep}));
    return absl::OkStatus();
  });
  if (!st.ok()) {
    if (!e) {  // made on some workers only: drop theirs (e, when made, does so as it goes)
      Wire drop;
      drop.put<uint8_t>(Group::kDrop);
      drop.put<int32_t>(id);
      g->call(drop, [] { return absl::OkStatus(); }).IgnoreError();
    }
    return st;
  }
  return std::unique_ptr<Engine>(std::move(e));
#endif
}

absl::Status Group::call(const Wire& msg, const std::function<absl::Status()>& local) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < to_.size(); ++i)
    if (!write_frame(to_[i], msg.bytes()))
      return absl::UnavailableError(absl::StrCat("rank ", i + 1, " of the GPU group has exited"));
  absl::Status st = local();
  for (size_t i = 0; i < from_.size(); ++i) {
    absl::Status w = read_status(from_[i], static_cast<int>(i + 1));
    if (st.ok()) st = w;
  }
  return st;
}

}  // namespace vex
