// vexprobe trace | weights | entropy | taxonomy | collab | divergence | context-test |
// router-probe (tools/vexprobe/routing.cpp).
#pragma once

#include <string>

namespace vex {

// Runs subcommand `cmd` with argv[1] = cmd; returns the exit status.
int routing(const std::string& cmd, int argc, char** argv);

}  // namespace vex
