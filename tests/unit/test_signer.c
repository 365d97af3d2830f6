#include <criterion/criterion.h>
Test(signer, placeholder) { cr_assert(1); }
