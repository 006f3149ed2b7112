// protobuf-c's runtime header (Debian: libprotobuf-c-dev).
#include <protobuf-c/protobuf-c.h>
