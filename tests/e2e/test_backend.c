#include <criterion/criterion.h>
Test(backend, placeholder) { cr_assert(1); }
