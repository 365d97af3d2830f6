#include <criterion/criterion.h>
Test(story, placeholder) { cr_assert(1); }
