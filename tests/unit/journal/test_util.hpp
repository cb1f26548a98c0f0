#pragma once
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "temp_dir.hpp"

using TempDir = fe::test::TempDir;
