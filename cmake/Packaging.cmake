# Debian packages (CPack DEB), see docs/install.md:
#   fhir-edge        /usr/bin/fhir-edge, /lib/systemd/system/fhir-edge.service,
#                    /usr/lib/sysusers.d/fhir-edge.conf, /usr/lib/tmpfiles.d/fhir-edge.conf,
#                    /etc/fhir-edge/fhir-edge.yaml (conffile), fhir-edge(1), /usr/share/doc/fhir-edge,
#                    /usr/share/bash-completion/completions/fhir-edge
#   fhir-edge-tools  /usr/bin/healthlake-local, healthlake-local(1)
#
#   cmake --build build --target fhir-edge healthlake-local && (cd build && cpack -G DEB)
#
# Two install components carry them: `daemon` and `tools` (the install() rules of the binaries
# name them). Files that only make sense in the package (absolute paths under /etc, /lib and
# /usr/lib, the Debian copyright and changelog) are EXCLUDE_FROM_ALL, so a plain
# `cmake --install build` still installs just the binaries, man pages and docs under the prefix.
#
# Included from the top-level CMakeLists.txt, and from packaging/CMakeLists.txt, a tiny project
# that packages binaries that are already built (cpack on the main tree first builds target `all`,
# which the package test must not wait for). Both are projects with the version of fhir-edge.
include_guard(GLOBAL)
set(FE_PACKAGE_VERSION "${PROJECT_VERSION}")

# Normalised (no "cmake/.."): Ninja refuses two rules for one file, and configure_file's own
# dependency on a source names it by its normal path.
cmake_path(SET _fe_pkg_src NORMALIZE "${CMAKE_CURRENT_LIST_DIR}/..")
cmake_path(REMOVE_FILENAME _fe_pkg_src)
string(REGEX REPLACE "/$" "" _fe_pkg_src "${_fe_pkg_src}")
set(_fe_pkg_out "${CMAKE_BINARY_DIR}/packaging")
file(MAKE_DIRECTORY "${_fe_pkg_out}")

set(FHIR_EDGE_DEB_MAINTAINER "fhir-edge developers <fhir-edge@users.noreply.github.com>"
    CACHE STRING "Maintainer field of the Debian packages (and of their changelog)")
# Native Debian version: the packaging lives upstream, so no -N revision (and changelog.gz, not
# changelog.Debian.gz, as lintian expects for native packages).
set(FHIR_EDGE_DEB_VERSION "${FE_PACKAGE_VERSION}")

find_program(FE_GZIP gzip REQUIRED)
# configure_file, then gzip -9n (no name or timestamp in the header: reproducible, as lintian wants).
function(_fe_pkg_gzip src out)
  configure_file("${src}" "${out}" @ONLY)
  execute_process(COMMAND "${FE_GZIP}" -9n -f "${out}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gzip -9n ${out} failed")
  endif()
endfunction()

set(FHIR_EDGE_VERSION "${FE_PACKAGE_VERSION}")
_fe_pkg_gzip("${_fe_pkg_src}/packaging/changelog.in" "${_fe_pkg_out}/changelog")
_fe_pkg_gzip("${_fe_pkg_src}/docs/man/fhir-edge.1" "${_fe_pkg_out}/fhir-edge.1")
_fe_pkg_gzip("${_fe_pkg_src}/docs/man/healthlake-local.1" "${_fe_pkg_out}/healthlake-local.1")

# The packaged unit: the source unit runs /usr/local/bin/fhir-edge (a source install, see
# docs/service.md); the package's binary is /usr/bin/fhir-edge, and the man page is installed.
file(READ "${_fe_pkg_src}/systemd/fhir-edge.service" _fe_unit)
string(REPLACE "=/usr/local/bin/fhir-edge " "=/usr/bin/fhir-edge " _fe_unit "${_fe_unit}")
string(REGEX REPLACE "\nDocumentation=([^\n]*)" "\nDocumentation=man:fhir-edge(1) \\1" _fe_unit
                     "${_fe_unit}")
file(WRITE "${_fe_pkg_out}/fhir-edge.service" "${_fe_unit}")
set_property(
  DIRECTORY
  APPEND
  PROPERTY CMAKE_CONFIGURE_DEPENDS
           "${_fe_pkg_src}/systemd/fhir-edge.service" "${_fe_pkg_src}/packaging/changelog.in"
           "${_fe_pkg_src}/docs/man/fhir-edge.1" "${_fe_pkg_src}/docs/man/healthlake-local.1")

# --- daemon component: fhir-edge ---------------------------------------------------------
install(FILES "${_fe_pkg_out}/fhir-edge.service" DESTINATION /lib/systemd/system
        COMPONENT daemon EXCLUDE_FROM_ALL)
install(FILES "${_fe_pkg_src}/systemd/fhir-edge.sysusers" DESTINATION /usr/lib/sysusers.d
        RENAME fhir-edge.conf COMPONENT daemon EXCLUDE_FROM_ALL)
install(FILES "${_fe_pkg_src}/systemd/fhir-edge.tmpfiles" DESTINATION /usr/lib/tmpfiles.d
        RENAME fhir-edge.conf COMPONENT daemon EXCLUDE_FROM_ALL)
install(FILES "${_fe_pkg_src}/config/fhir-edge.yaml" DESTINATION /etc/fhir-edge
        COMPONENT daemon EXCLUDE_FROM_ALL)
install(FILES "${_fe_pkg_out}/fhir-edge.1.gz" DESTINATION share/man/man1 COMPONENT daemon)
# journald's message catalog (`journalctl -x`); systemd's dpkg trigger on this directory runs
# `journalctl --update-catalog`.
install(FILES "${_fe_pkg_src}/systemd/fhir-edge.catalog" DESTINATION /usr/lib/systemd/catalog
        COMPONENT daemon EXCLUDE_FROM_ALL)
# bash completion of the subcommands and their options (bash-completion loads it on demand).
install(FILES "${_fe_pkg_src}/packaging/fhir-edge.bash-completion"
        DESTINATION share/bash-completion/completions RENAME fhir-edge COMPONENT daemon)
# The IAM policies (docs/iam-*.json) go with the documents that explain them.
file(GLOB _fe_docs CONFIGURE_DEPENDS "${_fe_pkg_src}/docs/*.md" "${_fe_pkg_src}/docs/iam-*.json")
install(FILES "${_fe_pkg_src}/README.md" ${_fe_docs} DESTINATION share/doc/fhir-edge
        COMPONENT daemon)
install(FILES "${_fe_pkg_src}/packaging/copyright" "${_fe_pkg_out}/changelog.gz"
        DESTINATION share/doc/fhir-edge COMPONENT daemon EXCLUDE_FROM_ALL)
# Prometheus alert rules and a Grafana dashboard (docs/metrics.md), ready to point at.
install(FILES "${_fe_pkg_src}/packaging/fhir-edge.rules.yml"
              "${_fe_pkg_src}/packaging/grafana/fhir-edge-dashboard.json"
        DESTINATION share/fhir-edge COMPONENT daemon)

# --- tools component: fhir-edge-tools ----------------------------------------------------
install(FILES "${_fe_pkg_out}/healthlake-local.1.gz" DESTINATION share/man/man1 COMPONENT tools)
install(FILES "${_fe_pkg_src}/tools/healthlake-local/README.md" DESTINATION
              share/doc/fhir-edge-tools COMPONENT tools)
install(FILES "${_fe_pkg_src}/packaging/copyright" "${_fe_pkg_out}/changelog.gz"
        DESTINATION share/doc/fhir-edge-tools COMPONENT tools EXCLUDE_FROM_ALL)

# --- CPack -------------------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME fhir-edge)
set(CPACK_PACKAGE_VERSION "${FE_PACKAGE_VERSION}")
set(CPACK_PACKAGE_VENDOR "fhir-edge")
set(CPACK_PACKAGE_CONTACT "${FHIR_EDGE_DEB_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL daemon tools)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # fhir-edge_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_VERSION "${FHIR_EDGE_DEB_VERSION}")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${FHIR_EDGE_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SOURCE fhir-edge)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/fhir-edge/fhir-edge")
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends from the binaries' shared libraries (dpkg-shlibdeps), plus what the scripts use.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_DAEMON_PACKAGE_NAME fhir-edge)
set(CPACK_DEBIAN_DAEMON_PACKAGE_SECTION net)
# postinst creates the user with systemd-sysusers and the watch root with systemd-tmpfiles.
set(CPACK_DEBIAN_DAEMON_PACKAGE_DEPENDS
    "systemd | systemd-standalone-sysusers | systemd-sysusers, systemd | systemd-standalone-tmpfiles | systemd-tmpfiles"
)
set(CPACK_DEBIAN_DAEMON_PACKAGE_SUGGESTS fhir-edge-tools)
set(CPACK_DEBIAN_DAEMON_DESCRIPTION
    "FHIR bulk export uploader for AWS HealthLake
fhir-edge watches directories on a hospital gateway for FHIR R4 bulk exports
(NDJSON), validates every resource at the AWS HealthLake validation level
(strict, structure-only or minimal), compresses them with zstd into a local
spool, uploads them to Amazon S3 with resumable multipart uploads and imports
them into an AWS HealthLake data store with StartFHIRImportJob, following each
job to its end.

Every step is journaled in SQLite, so a crash or reboot neither loses nor
duplicates data. It runs as a hardened systemd service (Type=notify, watchdog,
reload on SIGHUP) under its own unprivileged user.")
set(CPACK_DEBIAN_DAEMON_PACKAGE_CONTROL_EXTRA
    "${_fe_pkg_src}/packaging/conffiles" "${_fe_pkg_src}/packaging/postinst"
    "${_fe_pkg_src}/packaging/prerm" "${_fe_pkg_src}/packaging/postrm")

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME fhir-edge-tools)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_TOOLS_DESCRIPTION
    "local Amazon S3 and AWS HealthLake endpoint for testing fhir-edge
healthlake-local serves the Amazon S3 API and the AWS HealthLake FHIR import
API in one process on a loopback port. It checks every SigV4 signature,
verifies checksums, enforces multipart rules as S3 does, and really validates
and counts the data of each import job, so a fhir-edge deployment or
configuration can be rehearsed without an AWS account. Not for production use.")

include(CPack)
