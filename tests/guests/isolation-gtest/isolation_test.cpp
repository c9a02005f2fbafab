// The GoogleTest side of the isolation check (tests/tests/vmdbg_test.rs):
// each test fails if an earlier test's marker survived in the guest, one
// removes /bin/sh before one that needs it runs, one fails on purpose.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <unistd.h>

static const char *kMarker = "/root/isolation-marker";

static void LeaveAMarker(const char *test)
{
    ASSERT_NE(access(kMarker, F_OK), 0) << test << ": the marker of an earlier test is here";
    std::ofstream(kMarker) << test;
}

TEST(Isolation, MarkerOne) { LeaveAMarker("MarkerOne"); }
TEST(Isolation, MarkerTwo) { LeaveAMarker("MarkerTwo"); }
TEST(Isolation, BreaksTheShell)
{
    LeaveAMarker("BreaksTheShell");
    ASSERT_EQ(unlink("/bin/sh"), 0);
}
TEST(Isolation, NeedsAShell)
{
    LeaveAMarker("NeedsAShell");
    ASSERT_EQ(system("/bin/sh -c 'exit 0'"), 0);
}
TEST(Isolation, DeliberatelyFails) { EXPECT_EQ(1 + 1, 3) << "deliberately wrong arithmetic"; }
