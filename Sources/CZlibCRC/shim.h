// zlib, for crc32 only (the body log's per-body checksum).
#include <zlib.h>
