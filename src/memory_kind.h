// Where a buffer lives. Host buffers take the synchronous host path; device
// memory needs the GPU path. Without a CUDA driver every pointer is host.
#pragma once

namespace sqz {

enum class MemoryKind { kHost, kDevice, kManaged };

// True when a CUDA driver and at least one device are present (checked once).
bool cudaAvailable();
MemoryKind classifyPointer(const void* ptr);

}  // namespace sqz
