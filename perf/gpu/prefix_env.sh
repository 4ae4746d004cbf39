# Sourced by perf/gpu/run.sh and perf/gpu/fetch_deps.sh: how programs find
# Debian packages unpacked (dpkg -x) into a private prefix instead of /.

# The library folders of the prefix, for LD_LIBRARY_PATH.
prefix_library_path() {
  local p=$1 a=x86_64-linux-gnu
  echo "$p/usr/lib/$a:$p/lib/$a:$p/usr/lib/$a/openmpi/lib:$p/usr/lib/$a/pmix2/lib:$p/usr/lib/$a/ucx:$p/usr/lib/libpsm1"
}

# The links Debian's maintainer scripts would have made: shared-object names
# (ldconfig -n; some come from the alternatives system, as
# libpsm_infinipath.so.1), and the plain names of Open MPI's programs and
# pkg-config, in PREFIX/bin.
prefix_links() {
  local p=$1 d tool
  local IFS=:
  for d in $(prefix_library_path "$p"); do [[ -d $d ]] && ldconfig -n "$d"; done
  unset IFS
  mkdir -p "$p/bin"
  for tool in mpirun mpiexec mpicc mpicxx mpifort mpif90 mpif77; do
    [[ -e $p/usr/bin/$tool.openmpi ]] && ln -sf "$p/usr/bin/$tool.openmpi" "$p/bin/$tool"
  done
  [[ -e $p/usr/bin/pkgconf ]] && ln -sf "$p/usr/bin/pkgconf" "$p/bin/pkg-config"
  return 0
}

# Points the loader, CMake, pkg-config and Open MPI (with its PMIx) at the
# prefix.
prefix_use() {
  local p=$1 a=x86_64-linux-gnu
  export PATH="$p/bin:$p/usr/bin:$PATH"
  export LD_LIBRARY_PATH="$(prefix_library_path "$p")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export CMAKE_PREFIX_PATH="$p/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export PKG_CONFIG_LIBDIR="$p/usr/lib/$a/pkgconfig:$p/usr/share/pkgconfig"
  export PKG_CONFIG_SYSROOT_DIR=$p PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
  export OPAL_PREFIX=$p/usr
  local pmix=$p/usr/lib/$a/pmix2
  export PMIX_PREFIX=$pmix PMIX_LIBDIR=$pmix/lib PMIX_DATADIR=$pmix/share PMIX_PKGLIBDIR=$pmix/lib/pmix \
    PMIX_PKGDATADIR=$pmix/share/pmix
}
