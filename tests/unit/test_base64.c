#include <criterion/criterion.h>
Test(base64, placeholder) { cr_assert(1); }
