# fe_stage(NAME SOURCES... [DEPS targets...]): one static library per daemon stage, so a
# stage builds (and its tests run) on its own; `fhir_edge` aggregates them all.
function(fe_stage name)
  cmake_parse_arguments(S "" "" "SOURCES;DEPS" ${ARGN})
  add_library(fe_${name} STATIC ${S_SOURCES})
  target_include_directories(fe_${name} PUBLIC ${PROJECT_SOURCE_DIR}/daemon ${PROJECT_BINARY_DIR}/daemon)
  target_link_libraries(fe_${name} PUBLIC ${S_DEPS})
  set_property(GLOBAL APPEND PROPERTY FE_STAGES fe_${name})
endfunction()

# fe_test(NAME SOURCES... LIBS targets... LABELS labels... [TIMEOUT s]): a GoogleTest binary
# registered with CTest. Tests that read ../shared get FE_SHARED_DIR; tools get FE_BINARY_DIR.
function(fe_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main GTest::gmock)
  # The test kit's headers (tests/support: temp_dir.hpp, ...).
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/support)
  target_compile_definitions(${name} PRIVATE
    FE_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    FE_BINARY_DIR="${PROJECT_BINARY_DIR}"
    FE_SHARED_DIR="${PROJECT_SOURCE_DIR}/../shared")
  gtest_discover_tests(${name}
    PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
      # Tests never probe the EC2 instance metadata service (169.254.169.254): only loopback.
      ENVIRONMENT "AWS_EC2_METADATA_DISABLED=true"
    DISCOVERY_TIMEOUT 60)
endfunction()

# Add every immediate subdirectory that has a CMakeLists.txt (tests/unit/*, tools/*, ...),
# so each area owns its own CMakeLists without editing a shared list.
function(fe_add_subdirs)
  file(GLOB children LIST_DIRECTORIES true RELATIVE ${CMAKE_CURRENT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/*)
  list(SORT children)
  foreach(child ${children})
    if(IS_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/${child} AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${child}/CMakeLists.txt)
      add_subdirectory(${child})
    endif()
  endforeach()
endfunction()

# fe_node_test(NAME name [MODULE node_modules/<path>] COMMAND script args...): a test run with
# Node.js against a pinned npm peer (tests/node, installed by scripts/bootstrap). It is always
# registered: where node or the peer is missing, it fails naming the fix, so a clone that skipped
# the bootstrap never drops it in silence. The command is given without the node executable.
function(fe_node_test)
  cmake_parse_arguments(N "" "NAME;MODULE" "COMMAND" ${ARGN})
  find_program(FE_NODE_EXECUTABLE node)
  if(FE_NODE_EXECUTABLE AND (NOT N_MODULE OR EXISTS ${PROJECT_SOURCE_DIR}/tests/node/node_modules/${N_MODULE}))
    add_test(NAME ${N_NAME} COMMAND ${FE_NODE_EXECUTABLE} ${N_COMMAND})
  else()
    add_test(NAME ${N_NAME} COMMAND sh -c
      "echo '${N_NAME}: needs node and tests/node/node_modules/${N_MODULE}: run scripts/bootstrap, then re-run cmake' >&2; exit 1")
  endif()
endfunction()
