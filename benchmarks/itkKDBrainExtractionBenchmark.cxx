/*=========================================================================
 *
 *  Copyright NumFOCUS
 *
 *  Licensed under the Apache License, Version 2.0 (the "License");
 *  you may not use this file except in compliance with the License.
 *  You may obtain a copy of the License at
 *
 *         http://www.apache.org/licenses/LICENSE-2.0.txt
 *
 *  Unless required by applicable law or agreed to in writing, software
 *  distributed under the License is distributed on an "AS IS" BASIS,
 *  WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 *  See the License for the specific language governing permissions and
 *  limitations under the License.
 *
 *=========================================================================*/
// Google Benchmark of the pieces of extraction and training: the network's
// forward pass on head-sized working grids (with its achieved GFLOP/s), one
// training step, the hybrid loss, and the resampling onto the working grid.
// Not a test: CI builds it, people run it (see README, "Benchmarks").
#include "itkKDBrainExtractionHybridLoss.h"
#include "itkKDBrainExtractionPreprocessing.h"
#include "itkKDBrainExtractionTorchModel.h"
#include "itkUNetPlusPlus.h"

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <thread>

namespace
{
/** Multiply-adds of one forward pass: the 3x3x3 and 1x1x1 convolutions. */
double
ForwardMultiplyAdds(const itk::UNetPlusPlusOptions & options, int64_t voxels)
{
  double total = 0.0;
  auto   width = [&options](int level) { return static_cast<double>(options.BaseWidth << level); };
  for (int i = 0; i <= options.Depth; ++i)
  {
    const double levelVoxels = static_cast<double>(voxels) / std::pow(8.0, i);
    for (int j = 0; i + j <= options.Depth; ++j)
    {
      const double in = j == 0 ? (i == 0 ? options.InputChannels : width(i - 1)) : j * width(i) + width(i + 1);
      total += 27.0 * (in * width(i) + width(i) * width(i)) * levelVoxels;
    }
  }
  const int heads = options.DeepSupervision ? options.Depth : 1;
  return total + heads * width(0) * options.OutputChannels * voxels;
}

itk::UNetPlusPlus
MakeNetwork(int width)
{
  itk::UNetPlusPlusOptions options;
  options.Depth = 3;
  options.BaseWidth = width;
  options.DeepSupervision = true;
  torch::manual_seed(1);
  itk::UNetPlusPlus network(options);
  network->eval();
  return network;
}

/** Forward pass on a working grid of (x, y, z) voxels; arguments: width, x, y, z. */
void
BM_NetworkForward(benchmark::State & state)
{
  const auto          width = static_cast<int>(state.range(0));
  auto                network = MakeNetwork(width);
  const torch::Tensor input = torch::rand({ 1, 1, state.range(3), state.range(2), state.range(1) });
  c10::InferenceMode  inference;
  for (auto _ : state)
  {
    benchmark::DoNotOptimize(network->forward(input));
  }
  const double flops = 2.0 * ForwardMultiplyAdds(network->GetOptions(), input.numel());
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = at::get_num_threads();
}

/** One optimiser step of the student on a batch of patches; arguments: width, batch, patch. */
void
BM_TrainingStep(benchmark::State & state)
{
  const auto width = static_cast<int>(state.range(0));
  auto       network = MakeNetwork(width);
  network->train();
  const int64_t       batch = state.range(1);
  const int64_t       patch = state.range(2);
  const torch::Tensor image = torch::rand({ batch, 1, patch, patch, patch });
  const torch::Tensor mask = (image > 0.5).to(torch::kFloat32);
  torch::optim::Adam  optimizer(network->parameters(), torch::optim::AdamOptions(1e-3).weight_decay(1e-5));
  for (auto _ : state)
  {
    optimizer.zero_grad();
    torch::Tensor loss = torch::zeros({});
    for (const auto & head : network->ForwardHeads(image))
    {
      loss = loss + itk::KDBrainExtractionHybridLoss(torch::sigmoid(head), mask).Loss;
    }
    loss.backward();
    optimizer.step();
  }
  state.counters["steps/s"] = benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
}

/** The hybrid loss (MSE, 3D SSIM, soft Dice) and its gradient; argument: patch. */
void
BM_HybridLoss(benchmark::State & state)
{
  const int64_t       patch = state.range(0);
  const torch::Tensor target = (torch::rand({ 2, 1, patch, patch, patch }) > 0.5).to(torch::kFloat32);
  const torch::Tensor logits = torch::randn({ 2, 1, patch, patch, patch }).requires_grad_(true);
  for (auto _ : state)
  {
    const auto loss = itk::KDBrainExtractionHybridLoss(torch::sigmoid(logits), target).Loss;
    loss.backward();
  }
}

/** Resampling and normalisation of a head onto the 2 mm working grid; argument: input spacing (mm). */
void
BM_PrepareWorkingVolume(benchmark::State & state)
{
  using ImageType = itk::KDBrainExtractionPreprocessing::ImageType;
  const double        spacing = static_cast<double>(state.range(0));
  auto                image = ImageType::New();
  ImageType::SizeType size;
  size[0] = static_cast<itk::SizeValueType>(240 / spacing);
  size[1] = static_cast<itk::SizeValueType>(240 / spacing);
  size[2] = static_cast<itk::SizeValueType>(180 / spacing);
  image->SetRegions(size);
  image->SetSpacing(spacing);
  image->Allocate();
  const auto random = torch::rand({ static_cast<int64_t>(image->GetBufferedRegion().GetNumberOfPixels()) });
  std::copy_n(random.data_ptr<float>(), random.numel(), image->GetBufferPointer());
  const itk::KDBrainExtractionPreprocessing::Contract contract;
  for (auto _ : state)
  {
    itk::KDBrainExtractionPreprocessing::IntensityWindow window;
    benchmark::DoNotOptimize(itk::KDBrainExtractionPreprocessing::PrepareWorkingVolume(image, contract, window));
  }
}
} // namespace

// A 2 mm IXI head's working grid is 120 x 120 x 96; cropped to the head, about 96 x 112 x 88.
BENCHMARK(BM_NetworkForward)
  ->Args({ 8, 120, 120, 96 })
  ->Args({ 8, 96, 112, 88 })
  ->Args({ 16, 96, 112, 88 })
  ->Unit(benchmark::kMillisecond)
  ->UseRealTime();
BENCHMARK(BM_TrainingStep)->Args({ 8, 2, 48 })->Args({ 16, 2, 48 })->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_HybridLoss)->Arg(48)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_PrepareWorkingVolume)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

int
main(int argc, char ** argv)
{
  // LibTorch uses one thread here unless told; benchmark what kdbet uses: all cores.
  at::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
  if (std::getenv("KDBET_BENCHMARK_DEFAULT_MALLOC") == nullptr)
  {
    itk::KDBrainExtractionTorchModel::RetainFreedMemory();
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
  {
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
