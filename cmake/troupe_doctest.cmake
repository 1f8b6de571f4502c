# troupe_test_binary(NAME sources... [PREFIX p]): a doctest executable registered with CTest.
# PREFIX names its test cases "p<case>" so a run can pick them (ctest -R '^actors\.'); a second
# LABELS value does not survive doctest_discover_tests' list handling, a name prefix does.
include(${doctest_DIR}/doctest.cmake OPTIONAL RESULT_VARIABLE TROUPE_DOCTEST_MODULE)

function(troupe_test_binary name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "PREFIX" "")
  add_executable(${name} ${PROJECT_SOURCE_DIR}/tests/doctest_main.cpp ${arg_UNPARSED_ARGUMENTS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${TROUPE_WARNINGS})
  target_link_libraries(${name} PRIVATE doctest::doctest)
  target_compile_definitions(${name} PRIVATE TROUPE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  if(TROUPE_DOCTEST_MODULE)
    doctest_discover_tests(${name} TEST_PREFIX "${arg_PREFIX}" PROPERTIES LABELS unit)
  else()
    add_test(NAME ${arg_PREFIX}${name} COMMAND ${name})
    set_tests_properties(${arg_PREFIX}${name} PROPERTIES LABELS unit)
  endif()
endfunction()
