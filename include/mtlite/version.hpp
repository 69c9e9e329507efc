// The library version (semantic versioning).
#pragma once

#define MTLITE_VERSION_MAJOR 0
#define MTLITE_VERSION_MINOR 1
#define MTLITE_VERSION_PATCH 0
#define MTLITE_VERSION_STRING "0.1.0"
