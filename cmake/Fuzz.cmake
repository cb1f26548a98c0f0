# Fuzzing (docs/fuzzing.md).
#
# -DFHIR_EDGE_FUZZ=ON with clang (-DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_COMPILER=clang-14):
# every stage library is compiled with -fsanitize=fuzzer-no-link,address,undefined (coverage
# instrumentation without libFuzzer's main) and tests/fuzz links one libFuzzer binary per target
# (fuzz_<target>). Without the option, tests/fuzz compiles the same target sources with the normal
# compiler into CTest regression tests that replay tests/fuzz/corpus/<target>/ and
# tests/fuzz/regressions/<target>/.
if(FHIR_EDGE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "FHIR_EDGE_FUZZ needs clang: -DCMAKE_CXX_COMPILER=clang++-14 "
                        "-DCMAKE_C_COMPILER=clang-14")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
  # A fuzz-only build (-DFHIR_EDGE_TESTS=OFF, as scripts/fuzz configures it) still needs the
  # targets; with the tests on, tests/CMakeLists.txt adds the folder itself.
  if(NOT FHIR_EDGE_TESTS)
    add_subdirectory(tests/fuzz)
  endif()
endif()
