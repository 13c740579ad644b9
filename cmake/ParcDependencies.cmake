# parc's dependencies, shared by the build and by find_package(parc).
# MPICH is found through its own pkg-config file, never through the mpicc/mpiexec
# alternatives: installing Open MPI (e.g. with python3-mpi4py) must not switch parc.
find_package(PkgConfig REQUIRED)
pkg_check_modules(PARC_MPICH REQUIRED IMPORTED_TARGET GLOBAL mpich)
if(NOT TARGET parc_mpich)
  add_library(parc_mpich INTERFACE IMPORTED GLOBAL)
  target_link_libraries(parc_mpich INTERFACE PkgConfig::PARC_MPICH)
endif()
# OpenBLAS (its CBLAS) for the C++ Cannon example, through its pkg-config file too; only
# when the examples are built, so that find_package(parc) does not require it.
if(PARC_BUILD_EXAMPLES)
  pkg_check_modules(PARC_OPENBLAS REQUIRED IMPORTED_TARGET GLOBAL openblas)
  if(NOT TARGET parc_openblas)
    add_library(parc_openblas INTERFACE IMPORTED GLOBAL)
    target_link_libraries(parc_openblas INTERFACE PkgConfig::PARC_OPENBLAS)
  endif()
endif()
find_program(PARC_MPIEXEC NAMES mpiexec.mpich mpiexec.hydra REQUIRED
             DOC "MPICH's launcher (not the mpiexec alternative, which may be Open MPI's)")
find_package(cereal CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(Threads REQUIRED)  # the proxy service's progress thread
