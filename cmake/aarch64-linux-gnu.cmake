# Cross-building libpocketlm for arm64 Linux/glibc with Debian's gcc-aarch64-linux-gnu:
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
# The C tests then run under qemu-aarch64 (CMAKE_CROSSCOMPILING_EMULATOR), so
# `ctest --test-dir build/aarch64` runs them as on x86. Libraries are linked
# with 16 KiB page alignment (-z max-page-size=16384): Android 15 devices with
# 16 KiB pages refuse to load a library whose LOAD segments are aligned less.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(PLM_CROSS_PREFIX aarch64-linux-gnu- CACHE STRING "prefix of the cross tools")
set(CMAKE_C_COMPILER ${PLM_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${PLM_CROSS_PREFIX}g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-Wl,-z,max-page-size=16384 -Wl,-z,common-page-size=16384")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,-z,max-page-size=16384")
# qemu-aarch64 finds the target's loader and libc under the sysroot
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
