#include <criterion/criterion.h>
Test(keycache, placeholder) { cr_assert(1); }
