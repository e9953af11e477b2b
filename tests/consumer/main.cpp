// A program outside the aem tree: it knows only find_package(aem) and aem::aem, and keeps its
// own allocator (the C library's malloc): linking aem does not replace it.
#include "consumer_program.hpp"

int main() { return consumer::report(/*want_mimalloc=*/false); }
