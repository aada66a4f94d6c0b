// vexprobe topk | force: generation and quality with the routing changed (tools/vexprobe/steer.cpp).
#pragma once

namespace vex {

// argv[1] is the subcommand; returns the exit status.
int topk(int argc, char** argv);
int force(int argc, char** argv);

}  // namespace vex
