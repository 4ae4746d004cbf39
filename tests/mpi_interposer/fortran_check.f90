! A Fortran caller of MPI_Allreduce (`use mpi`): REAL sums of 100003
! elements, with separate buffers and with MPI_IN_PLACE. Open MPI's Fortran
! bindings call PMPI_Allreduce directly, so libsqz_mpi.so never sees these
! calls and they are MPI's own; run_fortran_check.sh shows it: the printed
! bit-pattern checksums are the same with and without the interposer (with
! SQZ_COMPRESSION=q8, which would change them if the calls were served).
program fortran_check
  use mpi
  implicit none
  integer, parameter :: n = 100003
  integer :: ierr, rank, nranks, i
  real, allocatable :: x(:), y(:)
  allocate(x(n), y(n))
  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nranks, ierr)
  do i = 1, n
    x(i) = sin(0.001 * i + 0.7 * rank) * (1.0 + 0.1 * rank)
  end do
  call MPI_Allreduce(x, y, n, MPI_REAL, MPI_SUM, MPI_COMM_WORLD, ierr)
  if (ierr /= MPI_SUCCESS) error stop "MPI_Allreduce failed"
  call MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_REAL, MPI_SUM, MPI_COMM_WORLD, ierr)
  if (ierr /= MPI_SUCCESS) error stop "MPI_Allreduce (in place) failed"
  print '(a,i0,a,z16.16,a,z16.16)', 'fortran_check rank ', rank, ' separate ', checksum(y), ' in_place ', checksum(x)
  call MPI_Finalize(ierr)
contains
  ! Order-sensitive hash of the values' bit patterns.
  integer(8) function checksum(v)
    real, intent(in) :: v(:)
    integer :: j
    checksum = 0
    do j = 1, size(v)
      checksum = ieor(ishftc(checksum, 5), int(transfer(v(j), 0), 8))
    end do
  end function checksum
end program fortran_check
