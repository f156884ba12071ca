/* test_version.c — the version macros and the library agree. */
#include "harness.h"

#include <stdio.h>
#include <string.h>

TEST(version_string_is_built_from_the_numbers)
{
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", TAPIO_VERSION_MAJOR,
             TAPIO_VERSION_MINOR, TAPIO_VERSION_PATCH);
    CHECK(strcmp(TAPIO_VERSION, expected) == 0);
}

TEST(library_reports_the_header_version)
{
    CHECK(strcmp(tapio_version(), TAPIO_VERSION) == 0);
}
