#include <criterion/criterion.h>
Test(nonce, placeholder) { cr_assert(1); }
