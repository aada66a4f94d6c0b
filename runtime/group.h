// Several GPUs, one process each (docs/multi-gpu.md): a process group made by forking one worker
// per further GPU, joined by one NCCL communicator, and a pipe from rank 0 to every worker that
// carries the calls made on rank 0's engines, so that every rank runs the same calls in the
// same order (each engine's collectives then match across ranks). Rank 0 is the program: it
// loads models, schedules requests, speaks HTTP; the workers only mirror its engine calls.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/status.h"

namespace vex {

// How a model is split over a group's GPUs: attention heads, the K/V cache and the lm_head's
// vocabulary over tp ranks (one all-reduce after the O projection, one all-gather of the
// logits), each MoE layer's experts over ep ranks (one all-reduce after the experts). Each is
// 1 (replicated on every rank) or the group's size; 0 means the group's size.
struct Parallel {
  int tp = 0, ep = 0;
};

// A message between ranks: plain values and arrays of them, appended and read back in order.
class Wire {
 public:
  template <typename T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    bytes_.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  template <typename T>
  void put_span(std::span<const T> v) {
    static_assert(std::is_trivially_copyable_v<T>);
    put<uint64_t>(v.size());
    bytes_.append(reinterpret_cast<const char*>(v.data()), v.size_bytes());
  }
  void put_string(std::string_view s) { put_span(std::span<const char>(s.data(), s.size())); }

  template <typename T>
  absl::Status get(T* v) {
    static_assert(std::is_trivially_copyable_v<T>);
    VEX_RETURN_IF_ERROR(need(sizeof(T)));
    std::memcpy(v, bytes_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return absl::OkStatus();
  }
  template <typename T>
  absl::Status get_vector(std::vector<T>* v) {
    uint64_t n = 0;
    VEX_RETURN_IF_ERROR(get(&n));
    if (n > (bytes_.size() - at_) / sizeof(T))  // (n * sizeof(T) could wrap)
      return absl::DataLossError(absl::StrCat("group message of ", bytes_.size(),
                                              " bytes ends at byte ", at_, " before an array of ",
                                              n, " elements of ", sizeof(T), " bytes"));
    v->resize(n);
    if (n) std::memcpy(v->data(), bytes_.data() + at_, n * sizeof(T));
    at_ += n * sizeof(T);
    return absl::OkStatus();
  }
  absl::Status get_string(std::string* s) {
    std::vector<char> v;
    VEX_RETURN_IF_ERROR(get_vector(&v));
    s->assign(v.begin(), v.end());
    return absl::OkStatus();
  }
  const std::string& bytes() const { return bytes_; }
  std::string& bytes() { return bytes_; }
  bool done() const { return at_ == bytes_.size(); }

 private:
  absl::Status need(uint64_t n) const {
    if (n <= bytes_.size() - at_) return absl::OkStatus();
    return absl::DataLossError(absl::StrCat("group message of ", bytes_.size(),
                                            " bytes ends at byte ", at_, " where ", n,
                                            " more were expected"));
  }
  std::string bytes_;
  size_t at_ = 0;
};

struct Model;
class Engine;

class Group {
 public:
  // Forks n - 1 workers (rank r on CUDA device r) and joins the n processes to one NCCL
  // communicator; the calling process is rank 0 on device 0. Must run before this process
  // touches CUDA (a forked child cannot use its parent's CUDA state) and while it has no other
  // threads. n == 1 does nothing. In a worker this never returns: it serves rank 0's calls
  // until rank 0 closes the pipe or exits, then exits.
  static absl::Status launch(int n);
  // The same group started by a launcher (torchrun --no-python, mpirun), one process per GPU
  // each running the same command: RANK, WORLD_SIZE and LOCAL_RANK (the device; Open MPI's
  // OMPI_COMM_WORLD_* names too), rank 0 listening on MASTER_ADDR at the port after
  // MASTER_PORT (torchrun's store holds MASTER_PORT; VEX_GROUP_PORT sets it; default
  // 127.0.0.1:29501) for the others. Nothing when WORLD_SIZE is unset or 1; in a rank other
  // than 0 this never returns.
  static absl::Status join();
  // The launcher's WORLD_SIZE (1 when unset, < 1 when not a count).
  static int launcher_size();
  // join() when started by a launcher (n must then be 1 or its WORLD_SIZE), else launch(n).
  static absl::Status begin(int n);
  // The process's group; null when launch(n > 1) has not run.
  static Group* get();

  // The NCCL library's version code (e.g. 22809 for 2.28.9), 0 without CUDA.
  static int nccl_version();
  int rank() const { return rank_; }
  int size() const { return size_; }
  void* comm() const { return comm_; }  // ncclComm_t
  // Rank 0: sends `msg` to every worker, runs `local`, then waits for every worker's result.
  // Returns local's error, else the first worker's (named by rank). One call at a time (from
  // any thread): the ranks must meet the collectives of every engine in the same order. A worker runs the message
  // (serve_message in group.cpp: make or drop an engine, or one of its calls) and answers its
  // status.
  absl::Status call(const Wire& msg, const std::function<absl::Status()>& local);
  // Rank 0: an id for a new engine that its mirrors on the workers are known by.
  int next_engine_id() { return next_id_++; }
  // What a message asks a worker (the first byte; then the engine's id, int32).
  enum Op : uint8_t {
    kMake = 1,  // make an engine: model dir, manifest, mask_pruned, max_ctx, n_seqs, tp, ep
    kDrop = 2,  // drop it
    kCall = 3,  // one of its calls (CudaEngine::replay)
  };

  ~Group();

 private:
  Group() = default;
  bool serve();  // a worker's loop: false when it could not start (its device, NCCL)
  // Rank 0, once every worker of g has its channel: the devices checked (local: the group's GPUs
  // are this host's first `local`), the NCCL id sent, the communicator made. Deletes g on
  // failure.
  static absl::Status start(Group* g, int device, int local);
  int rank_ = 0, size_ = 1, device_ = 0;
  void* comm_ = nullptr;
  std::vector<int> to_, from_;  // rank 0: pipes to and from each worker (index rank - 1)
  std::vector<int> pids_;
  int in_ = -1, out_ = -1;  // a worker: its pipes from and to rank 0
  int next_id_ = 1;
  std::mutex mu_;  // call()
};

// make_engine's path when the group splits the model (p resolved: tp, ep each 1 or the size, not
// both 1): the same engine made on every rank, rank 0's returned.
absl::StatusOr<std::unique_ptr<Engine>> make_group_engine(const Model& model, int max_ctx,
                                                          int n_seqs, Parallel p);

}  // namespace vex
