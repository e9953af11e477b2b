// A program outside the aem tree that opts into mimalloc: it links aem::aem and aem::mimalloc,
// so mimalloc serves its malloc (and aem's allocations).
#include "consumer_program.hpp"

int main() { return consumer::report(/*want_mimalloc=*/true); }
