#include <criterion/criterion.h>
Test(sf, placeholder) { cr_assert(1); }
