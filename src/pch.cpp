// The unit that builds the precompiled header of LibTorch, nlohmann_json and spdlog
// (CMakeLists.txt, mmfusion_pch), which every library that uses tensors reuses.
