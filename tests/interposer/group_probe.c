/* Calls a (fake) NCCL as an application inside and outside NCCL groups, so
 * that tests/interposer/test_groups.sh can read, from the fake's log, which
 * ncclAllReduce calls the interposer deferred to the group's end, which it
 * forwarded into the group, and in what order. Buffers are never touched. */
#include <nccl.h>
#include <stdio.h>

const char* fakeNcclLog(void);
void fakeNcclReset(void);

#define COMM(n) ((ncclComm_t)(size_t)(n))

static void scenario(const char* name) {
  printf("%s: %s\n", name, fakeNcclLog());
  fakeNcclReset();
}

int main(void) {
  char buf[16];
  const size_t big = 1 << 18; /* 1 MiB of float32: eligible under SQZ_MIN_BYTES=0 */

  /* A group of eligible calls on one communicator (PyTorch's coalesced
   * allreduce): deferred to the group's end, then served in order. */
  ncclGroupStart();
  ncclAllReduce(buf, buf, big, ncclFloat32, ncclSum, COMM(1), NULL);
  ncclAllReduce(buf, buf, big + 1, ncclBfloat16, ncclAvg, COMM(1), NULL);
  ncclGroupEnd();
  scenario("one communicator");

  /* Nested groups: served at the outermost end. */
  ncclGroupStart();
  ncclGroupStart();
  ncclAllReduce(buf, buf, big, ncclFloat32, ncclSum, COMM(3), NULL);
  ncclGroupEnd();
  ncclAllReduce(buf, buf, 7, ncclInt32, ncclSum, COMM(3), NULL);
  ncclGroupEnd();
  scenario("nested, with an ineligible call");

  /* One thread driving two communicators in one group: forwarded whole,
   * inside the group. */
  ncclGroupStart();
  ncclAllReduce(buf, buf, big, ncclFloat32, ncclSum, COMM(4), NULL);
  ncclAllReduce(buf, buf, big, ncclFloat32, ncclSum, COMM(5), NULL);
  ncclGroupEnd();
  scenario("two communicators");

  /* Outside any group. */
  ncclAllReduce(buf, buf, big, ncclFloat32, ncclSum, COMM(6), NULL);
  scenario("no group");
  return 0;
}
