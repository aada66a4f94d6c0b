# Writes OUT (a header defining VEX_GIT_COMMIT) from `git describe --always --dirty` of SRC,
# touching it only when the text changes. Run at every build (CMakeLists.txt: vex_commit), so
# a binary names the commit it was built from, with "-dirty" for uncommitted changes.
execute_process(COMMAND git describe --always --dirty --abbrev=7 WORKING_DIRECTORY ${SRC}
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT commit)
  set(commit unknown)
endif()
set(text "#pragma once\n#define VEX_GIT_COMMIT \"${commit}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUT} "${text}")
endif()
