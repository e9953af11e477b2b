// export.hpp — symbol visibility for aem's public API.
#pragma once

#if defined(AEM_SHARED_BUILD)
#define AEM_EXPORT __attribute__((visibility("default")))
#else
#define AEM_EXPORT
#endif
