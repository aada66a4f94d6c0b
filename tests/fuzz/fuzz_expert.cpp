// One builtin expert's reader (VEX_FUZZ_EXPERT names it) on arbitrary text, the way the runtime
// calls it: answers are exact or declined, so the properties checked are the ones every answer
// must have. libFuzzer's -timeout and -rss_limit_mb hold each call to the budgets.
#include <cstdint>
#include <memory>

#include "experts/expert.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using vex::fuzz::check;
  static const std::unique_ptr<vex::HostExpert> expert = [] {
    const std::string_view name = VEX_FUZZ_EXPERT;
    if (name == "datetime")  // a fixed clock: a crash found must replay
      return vex::make_datetime(absl::UTCTimeZone(),
                                [] { return absl::FromUnixSeconds(1796000000); });
    if (auto e = vex::make_builtin_expert(name)) return e;
    check(false, "no builtin expert of that name");
    return std::unique_ptr<vex::HostExpert>();
  }();
  const std::string_view in = vex::fuzz::text(data, size);
  const auto a = expert->answer(in);
  if (!a) return 0;
  check(!a->output.empty(), "an empty answer");
  // The answer after a space (none after whitespace), or on the next line or after a colon
  // where the question is a request ("Run this: ...", "Convert ...").
  check(a->continuation == vex::continue_with(in, a->output) ||
            a->continuation == "\n" + a->output || a->continuation == ": " + a->output,
        "continuation is not the output");
  return 0;
}
