// Placeholder so the runtime test binary links.
#include <doctest/doctest.h>
