# Debian's hardening build flags (issue 17 item 6), as `DEB_BUILD_MAINT_OPTIONS=hardening=+all
# dpkg-buildflags` gives them on Debian 12 (gcc 12):
#   CFLAGS/CXXFLAGS  -fstack-protector-strong -Wformat -Werror=format-security
#   CPPFLAGS         -D_FORTIFY_SOURCE=2
#   LDFLAGS          -Wl,-z,relro -Wl,-z,now
#   and PIE (Debian's gcc defaults to it; set here so any compiler gives a PIE).
# On x86_64 also -fstack-clash-protection and -fcf-protection, which Debian 13's dpkg-buildflags
# adds on amd64 (hardening features "stackclash" and "branch") and hardening-check requires
# ("Stack clash protection", "Control flow integrity"). On Debian 12 the binary still ends up
# without the CET (IBT/SHSTK) note: glibc's start files Scrt1.o/crti.o/crtn.o lack it, so the
# linker drops it (-Wl,-z,cet-report=warning names them); the package test says so.
# `hardening-check` (devscripts) checks the packaged binary in tests/integration/package.
#
# Release and packaged builds get them (every build type but Debug; the release preset is
# RelWithDebInfo, and docs/install.md packages its binaries). Debug builds, the debug-asan preset
# among them, stay as they were: _FORTIFY_SOURCE needs optimisation (glibc warns, and -Werror
# fails, at -O0) and would hide overflows from ASan, which intercepts the same functions; nothing
# built for debugging ships. A sanitizer build of another type gets everything but FORTIFY.
option(FHIR_EDGE_HARDENING "Build with Debian's hardening flags (see cmake/Hardening.cmake)" ON)
# What tests/integration/package asks hardening-check for: all, all-but-fortify, or none.
set(FHIR_EDGE_HARDENING_CHECK none)
string(TOUPPER "${CMAKE_BUILD_TYPE}" _fe_build_type)
if(NOT FHIR_EDGE_HARDENING OR FHIR_EDGE_FUZZ OR _fe_build_type STREQUAL "DEBUG")
  return()
endif()
set(FHIR_EDGE_HARDENING_CHECK nofortify)

include(CheckPIESupported)
check_pie_supported(LANGUAGES C CXX)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)

add_compile_options(-fstack-protector-strong -Wformat -Werror=format-security)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  add_compile_options(-fstack-clash-protection -fcf-protection)
endif()
if(NOT FHIR_EDGE_SANITIZE)
  # -U first: a compiler or CPPFLAGS that already defines it must not make a redefinition warning.
  add_compile_options(-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2)
  set(FHIR_EDGE_HARDENING_CHECK all)
endif()
add_link_options(LINKER:-z,relro LINKER:-z,now)
