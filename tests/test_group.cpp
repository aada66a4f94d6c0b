// The GPU group's parts that need no GPU: the messages between ranks (Wire: values and arrays
// back in order, a short or lying message an error, never a read past its end), and the
// launcher's environment read as a clear error when it is wrong. The group itself, NCCL and the
// split engine are tested on two GPUs (test_multi_gpu, label gpu).
#include <gtest/gtest.h>

#include <cstdlib>

#include "runtime/engine.h"
#include "runtime/group.h"

namespace vex {
namespace {

TEST(Wire, ValuesAndArraysComeBackInOrder) {
  Wire w;
  const std::vector<int32_t> tokens = {5, -1, 200000};
  const DecodeRow row{.seq = 3, .token = 42, .host_logits = false, .sampling = {.temperature = 0.7f, .top_k = 40}, .draws = 9};
  w.put<uint8_t>(7);
  w.put_span(std::span<const int32_t>(tokens));
  w.put_string("models/vex-demo");
  w.put(row);
  w.put_span(std::span<const int32_t>());
  uint8_t op = 0;
  std::vector<int32_t> got, none = {1};
  std::string dir;
  DecodeRow back;
  ASSERT_TRUE(w.get(&op).ok());
  ASSERT_TRUE(w.get_vector(&got).ok());
  ASSERT_TRUE(w.get_string(&dir).ok());
  ASSERT_TRUE(w.get(&back).ok());
  ASSERT_TRUE(w.get_vector(&none).ok());
  EXPECT_TRUE(w.done());
  EXPECT_EQ(op, 7);
  EXPECT_EQ(got, tokens);
  EXPECT_EQ(dir, "models/vex-demo");
  EXPECT_EQ(back.seq, 3);
  EXPECT_EQ(back.token, 42);
  EXPECT_FALSE(back.host_logits);
  EXPECT_EQ(back.sampling.top_k, 40);
  EXPECT_EQ(back.draws, 9u);
  EXPECT_TRUE(none.empty());
}

TEST(Wire, ShortOrLyingMessagesAreErrors) {
  Wire w;
  w.put<uint16_t>(1);
  int32_t x = 0;
  const absl::Status st = w.get(&x);
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(st.message(), "group message of 2 bytes ends at byte 0 where 4 more were expected");
  // An array whose count claims more than the message holds (even 2^63 elements) is refused
  // before anything is allocated.
  for (uint64_t n : {uint64_t(3), uint64_t(1) << 63, ~uint64_t(0)}) {
    Wire v;
    v.put<uint64_t>(n);
    v.put<int32_t>(1);
    std::vector<int32_t> out;
    EXPECT_EQ(v.get_vector(&out).code(), absl::StatusCode::kDataLoss) << n;
    EXPECT_TRUE(out.empty());
  }
}

// Without a launcher nothing is started; a wrong environment is named, and a group of one is
// nothing at all.
TEST(Group, LaunchAndJoinCheckTheirArguments) {
  EXPECT_EQ(Group::launch(0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Group::launch(1).ok());
  EXPECT_EQ(Group::get(), nullptr);
  unsetenv("WORLD_SIZE");
  unsetenv("OMPI_COMM_WORLD_SIZE");
  EXPECT_EQ(Group::launcher_size(), 1);
  EXPECT_TRUE(Group::join().ok());
  setenv("WORLD_SIZE", "1", 1);
  EXPECT_TRUE(Group::join().ok());
  setenv("WORLD_SIZE", "two", 1);
  EXPECT_LT(Group::launcher_size(), 1);
  EXPECT_EQ(Group::join().code(), absl::StatusCode::kInvalidArgument);
  setenv("WORLD_SIZE", "2", 1);
  setenv("RANK", "2", 1);
  const absl::Status st = Group::join();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "the launcher's RANK must be in [0, WORLD_SIZE = 2)");
  unsetenv("WORLD_SIZE");
  unsetenv("RANK");
  EXPECT_EQ(Group::get(), nullptr);
}

}  // namespace
}  // namespace vex
