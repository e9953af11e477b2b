# install(EXPORT) so that find_package(aem) works from another CMake project.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS aem EXPORT aemTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY include/aem DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT aemTargets NAMESPACE aem:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/aem)
# aem::mimalloc in an export set of its own: aemConfig.cmake loads it only where mimalloc is
# installed, so find_package(aem) does not require mimalloc.
if(TARGET aem_mimalloc)
  install(TARGETS aem_mimalloc EXPORT aemMimallocTargets)
  install(EXPORT aemMimallocTargets NAMESPACE aem:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/aem)
endif()
configure_package_config_file(cmake/aemConfig.cmake.in
  "${PROJECT_BINARY_DIR}/aemConfig.cmake"
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/aem)
write_basic_package_version_file("${PROJECT_BINARY_DIR}/aemConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/aemConfig.cmake" "${PROJECT_BINARY_DIR}/aemConfigVersion.cmake"
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/aem)
