#include <criterion/criterion.h>
Test(credential, placeholder) { cr_assert(1); }
