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
#include "itkKDBrainExtractionTrainer.h"

#include "itkHeadContrastSynthesisImageFilter.h"
#include "itkHeadTissueClassImageFilter.h"
#include "itkImageFileReader.h"
#include "itkKDBrainExtractionAugmentation.h"
#include "itkKDBrainExtractionBoundaryRefinement.h"
#include "itkKDBrainExtractionHybridLoss.h"
#include "itkKDBrainExtractionOutputFile.h"
#include "itkKDBrainExtractionTensorBridge.h"
#include "itkKDBrainExtractionTorchModelImplementation.h"
#include "itkKDBrainExtractionWholeHeadLabels.h"
#include "itkNearestNeighborInterpolateImageFunction.h"
#include "itkResampleImageFilter.h"
#include "itksys/SystemTools.hxx"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <iomanip>
#include <map>
#include <numeric>
#include <random>
#include <sstream>
#include <thread>

namespace itk
{
namespace
{
using ImageType = KDBrainExtractionPreprocessing::ImageType;
using MaskImageType = KDBrainExtractionPreprocessing::MaskImageType;
using LabelImageType = Image<unsigned short, 3>;
using TissueClassImageType = Image<unsigned char, 3>;
using ContrastFamily = HeadTissueEnums::ContrastFamily;
using Clock = std::chrono::steady_clock;

/** A case on its working grid: [1, z, y, x] tensors, and the bounding box
 * (z, y, x; inclusive) of its brain, which patch sampling draws centres from. */
struct WorkingCase
{
  std::string            Subject;
  torch::Tensor          Image;
  torch::Tensor          Mask;
  bool                   HasBrain{ false };
  std::array<int64_t, 3> BrainLow{ { 0, 0, 0 } };
  std::array<int64_t, 3> BrainHigh{ { 0, 0, 0 } };
  /** Tissue classes on the working grid, for synthetic contrasts; may be null. */
  TissueClassImageType::Pointer TissueClasses;
  /** A whole-head label map without an image: every sample is painted. */
  bool LabelsOnly{ false };
};

template <typename TImage>
typename TImage::Pointer
ReadVolume(const std::string & fileName)
{
  auto reader = ImageFileReader<TImage>::New();
  reader->SetFileName(fileName);
  try
  {
    reader->Update();
  }
  catch (const ExceptionObject & error)
  {
    itkGenericExceptionMacro(<< fileName << ": cannot read the image (" << error.GetDescription() << ")");
  }
  return reader->GetOutput();
}

/** A [1, z, y, x] copy of an image's voxels. */
torch::Tensor
ImageToTensor(const ImageType * image)
{
  const auto size = image->GetBufferedRegion().GetSize();
  return KDBrainExtractionBufferToTensor(image->GetBufferPointer(), { size[0], size[1], size[2] })[0].clone();
}

/** A case with a label map and neither image nor mask: a whole-head label
 * map, every sample of which is painted. */
bool
IsLabelMapCase(const KDBrainExtractionTrainer::Case & item)
{
  return item.Image.empty() && item.Mask.empty() && !item.Labels.empty();
}

/** Tissue classes moved onto the working grid by nearest neighbour; errors
 * name \a labelsFile, the map they come from. */
TissueClassImageType::Pointer
ClassesOnWorkingGrid(const TissueClassImageType * classes, const KDBrainExtractionPreprocessing::GridType * workingGrid,
                     const std::string & labelsFile)
{
  auto resample = ResampleImageFilter<TissueClassImageType, TissueClassImageType>::New();
  resample->SetInput(classes);
  resample->SetInterpolator(NearestNeighborInterpolateImageFunction<TissueClassImageType>::New());
  resample->SetReferenceImage(workingGrid);
  resample->UseReferenceImageOn();
  resample->SetDefaultPixelValue(static_cast<unsigned char>(HeadTissueEnums::TissueClass::Background));
  try
  {
    resample->Update();
  }
  catch (const ExceptionObject & error)
  {
    itkGenericExceptionMacro(<< labelsFile << ": cannot derive tissue classes (" << error.GetDescription() << ")");
  }
  return resample->GetOutput();
}

/** The tissue classes of a case (from its image, label map and mask) on the
 * working grid. */
TissueClassImageType::Pointer
LoadTissueClasses(const KDBrainExtractionTrainer::Case & item, const ImageType * image,
                  const KDBrainExtractionPreprocessing::GridType * workingGrid)
{
  auto classes = HeadTissueClassImageFilter<ImageType, LabelImageType, TissueClassImageType>::New();
  classes->SetInput(image);
  classes->SetLabelImage(ReadVolume<LabelImageType>(item.Labels));
  classes->SetBrainMaskImage(ReadVolume<LabelImageType>(item.Mask));
  return ClassesOnWorkingGrid(classes->GetOutput(), workingGrid, item.Labels);
}

/** The brain's bounding box of a case's working mask. */
void
FindBrainBox(WorkingCase & result)
{
  const auto brain = torch::nonzero(result.Mask[0]);
  result.HasBrain = brain.size(0) > 0;
  for (int axis = 0; axis < 3 && result.HasBrain; ++axis)
  {
    result.BrainLow[axis] = brain.select(1, axis).min().item<int64_t>();
    result.BrainHigh[axis] = brain.select(1, axis).max().item<int64_t>();
  }
}

/** A mask on the working grid as a [1, z, y, x] float tensor. */
torch::Tensor
MaskToTensor(const MaskImageType * mask)
{
  const auto size = mask->GetBufferedRegion().GetSize();
  auto       values =
    torch::empty({ 1, static_cast<int64_t>(size[2]), static_cast<int64_t>(size[1]), static_cast<int64_t>(size[0]) },
                 torch::kFloat32);
  std::copy_n(mask->GetBufferPointer(), values.numel(), values.data_ptr<float>());
  return values;
}

/** A whole-head label map on its working grid: its brain mask and tissue
 * classes (computed on the map's own grid, where the mask rule's closing
 * radius is resolved, then moved onto the working grid). The image is left
 * blank: every sample of the case is painted. */
WorkingCase
LoadLabelMapCase(const KDBrainExtractionTrainer::Case & item, const KDBrainExtractionPreprocessing::Contract & contract)
{
  using WholeHeadLabels = KDBrainExtractionWholeHeadLabels;
  const auto labels = ReadVolume<LabelImageType>(item.Labels);
  const auto brainMask = WholeHeadLabels::MakeBrainMask(labels, item.Labels);
  const auto classes = WholeHeadLabels::MakeTissueClasses(labels, brainMask);
  const auto working = KDBrainExtractionPreprocessing::MakeWorkingGrid(labels, contract);

  WorkingCase result;
  result.Subject = item.Subject;
  result.LabelsOnly = true;
  result.TissueClasses = ClassesOnWorkingGrid(classes, working, item.Labels);
  result.Mask = MaskToTensor(KDBrainExtractionPreprocessing::ResampleMaskToGrid(brainMask, working));
  result.Image = torch::zeros_like(result.Mask);
  FindBrainBox(result);
  return result;
}

WorkingCase
LoadCase(const KDBrainExtractionTrainer::Case & item, const KDBrainExtractionPreprocessing::Contract & contract,
         bool withTissueClasses)
{
  if (IsLabelMapCase(item))
  {
    return LoadLabelMapCase(item, contract);
  }
  const auto image = ReadVolume<ImageType>(item.Image);
  KDBrainExtractionPreprocessing::VerifyImage(image, item.Image);
  KDBrainExtractionPreprocessing::IntensityWindow window;
  const auto working = KDBrainExtractionPreprocessing::PrepareWorkingVolume(image, contract, window);
  const auto mask = ReadVolume<MaskImageType>(item.Mask);
  const auto workingMask = KDBrainExtractionPreprocessing::ResampleMaskToGrid(mask, working);

  WorkingCase result;
  result.Subject = item.Subject;
  result.Image = ImageToTensor(working);
  result.Mask = MaskToTensor(workingMask);
  FindBrainBox(result);
  if (withTissueClasses && !item.Labels.empty())
  {
    result.TissueClasses = LoadTissueClasses(item, image, working);
  }
  return result;
}

ContrastFamily
ParseContrastFamily(const std::string & name)
{
  if (name == "t1w" || name == "t1")
  {
    return ContrastFamily::T1w;
  }
  if (name == "t2w" || name == "t2")
  {
    return ContrastFamily::T2w;
  }
  if (name == "pdw" || name == "pd")
  {
    return ContrastFamily::PDw;
  }
  if (name == "random")
  {
    return ContrastFamily::Random;
  }
  if (name == "flair")
  {
    return ContrastFamily::FLAIR;
  }
  itkGenericExceptionMacro(<< "unknown synthetic contrast '" << name << "' (use t1w, t2w, pdw, flair or random)");
}

/** A synthetic image of \a item's head on its working grid, normalised as
 * PrepareWorkingVolume normalises real ones: [1, z, y, x]. */
torch::Tensor
SynthesiseImage(const TissueClassImageType * tissueClasses, ContrastFamily contrast, uint64_t seed,
                const KDBrainExtractionPreprocessing::Contract & contract)
{
  // Loader threads synthesise from the same classes at once: each pipeline
  // gets its own image object (a pipeline writes to its input's requested
  // region), sharing the read-only pixels.
  auto classes = TissueClassImageType::New();
  classes->CopyInformation(tissueClasses);
  classes->SetRegions(tissueClasses->GetLargestPossibleRegion());
  classes->SetPixelContainer(const_cast<TissueClassImageType *>(tissueClasses)->GetPixelContainer());
  auto synthesis = HeadContrastSynthesisImageFilter<TissueClassImageType, ImageType>::New();
  synthesis->SetInput(classes);
  synthesis->SetContrast(contrast);
  synthesis->SetSeed(seed);
  synthesis->Update();
  ImageType * image = synthesis->GetOutput();
  KDBrainExtractionPreprocessing::NormalizeIntensities(
    image, KDBrainExtractionPreprocessing::ComputeIntensityWindow(image, contract));
  return ImageToTensor(image);
}

/** Zero padding at the far end of each spatial axis up to \a minimum voxels. */
torch::Tensor
PadTo(const torch::Tensor & volume, const std::array<int64_t, 3> & minimum)
{
  std::vector<int64_t> padding;
  for (int axis = 2; axis >= 0; --axis)
  {
    padding.push_back(0);
    padding.push_back(std::max<int64_t>(0, minimum[axis] - volume.size(axis + 1)));
  }
  return torch::constant_pad_nd(volume, padding, 0.0);
}

/** Per-sample generator: the same (seed, sample) always gives the same numbers. */
std::mt19937_64
SampleGenerator(unsigned int seed, uint64_t sample, uint64_t stream)
{
  std::seed_seq sequence{ static_cast<uint64_t>(seed), sample, stream };
  return std::mt19937_64(sequence);
}

double
Uniform(std::mt19937_64 & generator, double low, double high)
{
  return std::uniform_real_distribution<double>(low, high)(generator);
}

/** The case seen by sample k: epochs are shuffled permutations of the cases. */
std::size_t
CaseOfSample(uint64_t sample, std::size_t numberOfCases, unsigned int seed)
{
  const uint64_t           epoch = sample / numberOfCases;
  std::vector<std::size_t> order(numberOfCases);
  std::iota(order.begin(), order.end(), 0);
  auto generator = SampleGenerator(seed, epoch, 0xE90C);
  std::shuffle(order.begin(), order.end(), generator);
  return order[sample % numberOfCases];
}

/** A random crop of \a patch voxels per axis; mostly centred in the brain. */
std::array<int64_t, 3>
ChoosePatchStart(const WorkingCase & item, int64_t patch, std::mt19937_64 & generator)
{
  std::array<int64_t, 3> start{ 0, 0, 0 };
  for (int axis = 0; axis < 3; ++axis)
  {
    const int64_t extent = item.Image.size(axis + 1);
    if (extent <= patch)
    {
      continue;
    }
    int64_t centre = 0;
    if (item.HasBrain && Uniform(generator, 0, 1) < 0.8)
    {
      centre = std::uniform_int_distribution<int64_t>(item.BrainLow[axis], item.BrainHigh[axis])(generator);
    }
    else
    {
      centre = std::uniform_int_distribution<int64_t>(0, extent - 1)(generator);
    }
    start[axis] = std::clamp<int64_t>(centre - patch / 2, 0, extent - patch);
  }
  return start;
}

/** Simulates a scan of lower resolution, resampled onto the working grid as
 * inference does: a Gaussian slice profile along each axis, sampling at the
 * coarser spacing, and linear interpolation back. Half of the time one axis is
 * thick (up to 3x the working spacing: a 1x1x3 mm scan on a 2 mm grid, or 2D
 * acquisitions), otherwise all axes are up to \a maximumIsotropicFactor times
 * coarser (by default 1.6: partial volume and the blur of interpolating between
 * grids that do not line up). */
torch::Tensor
DegradeResolution(const torch::Tensor & image, double maximumIsotropicFactor, double maximumThicknessFactor,
                  std::mt19937_64 & generator)
{
  namespace F = torch::nn::functional;
  std::array<double, 3> factor{ { 1.0, 1.0, 1.0 } };
  if (Uniform(generator, 0, 1) < 0.5)
  {
    factor[std::uniform_int_distribution<int>(0, 2)(generator)] = Uniform(generator, 1.2, maximumThicknessFactor);
  }
  else
  {
    const double common = Uniform(generator, 1.0, maximumIsotropicFactor);
    factor = { common, common, common };
  }
  torch::Tensor        degraded = image;
  std::vector<int64_t> lowSize;
  for (int axis = 0; axis < 3; ++axis)
  {
    const int64_t extent = image.size(axis + 2);
    // FWHM of the slice profile = the coarse spacing; sigma = FWHM / 2.355.
    const double sigma = factor[axis] > 1.0 ? std::sqrt(factor[axis] * factor[axis] - 1.0) / 2.355 : 0.0;
    if (sigma > 0.1)
    {
      const int64_t radius = std::min<int64_t>(static_cast<int64_t>(std::ceil(3 * sigma)), extent / 2 - 1);
      const auto    offsets = torch::arange(-radius, radius + 1, torch::kFloat32);
      auto          kernel = torch::exp(-0.5 * (offsets / sigma).pow(2));
      kernel = kernel / kernel.sum();
      std::vector<int64_t> shape{ 1, 1, 1, 1, 1 };
      shape[axis + 2] = 2 * radius + 1;
      std::vector<int64_t> padding{ 0, 0, 0, 0, 0, 0 };
      padding[2 * (2 - axis)] = padding[2 * (2 - axis) + 1] = radius;
      degraded = F::conv3d(F::pad(degraded, F::PadFuncOptions(padding).mode(torch::kReplicate)), kernel.view(shape));
    }
    lowSize.push_back(std::max<int64_t>(2, static_cast<int64_t>(std::lround(extent / factor[axis]))));
  }
  const auto trilinear = F::InterpolateFuncOptions().mode(torch::kTrilinear).align_corners(false);
  degraded = F::interpolate(degraded, F::InterpolateFuncOptions(trilinear).size(lowSize));
  return F::interpolate(degraded, F::InterpolateFuncOptions(trilinear).size(image.sizes().slice(2).vec()));
}

/** Flips, a small rotation and scaling, a nonlinear deformation, resolution
 * loss, gamma, scale, bias field and noise. */
void
Augment(torch::Tensor & image, torch::Tensor & mask, const KDBrainExtractionTrainer::Options & options,
        std::mt19937_64 & generator)
{
  namespace F = torch::nn::functional;
  // Left-right flip: heads are nearly symmetric in x (LPS working grid).
  if (Uniform(generator, 0, 1) < 0.5)
  {
    image = image.flip({ 4 });
    mask = mask.flip({ 4 });
  }
  if (Uniform(generator, 0, 1) < 0.5)
  {
    // A small affine: rotations up to 10 degrees about each axis, scale 0.9-1.1.
    const double pi = 3.14159265358979323846;
    const double a = Uniform(generator, -10, 10) * pi / 180;
    const double b = Uniform(generator, -10, 10) * pi / 180;
    const double c = Uniform(generator, -10, 10) * pi / 180;
    const double s = Uniform(generator, 0.9, 1.1);
    const auto   rx =
      torch::tensor({ 1.0, 0.0, 0.0, 0.0, std::cos(a), -std::sin(a), 0.0, std::sin(a), std::cos(a) }).view({ 3, 3 });
    const auto ry =
      torch::tensor({ std::cos(b), 0.0, std::sin(b), 0.0, 1.0, 0.0, -std::sin(b), 0.0, std::cos(b) }).view({ 3, 3 });
    const auto rz =
      torch::tensor({ std::cos(c), -std::sin(c), 0.0, std::sin(c), std::cos(c), 0.0, 0.0, 0.0, 1.0 }).view({ 3, 3 });
    const auto rotation = (rx.matmul(ry).matmul(rz) / s).to(torch::kFloat32);
    const auto theta = torch::cat({ rotation, torch::zeros({ 3, 1 }) }, 1).unsqueeze(0);
    const auto grid = F::affine_grid(theta, image.sizes().vec(), false);
    image = F::grid_sample(
      image, grid, F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false));
    mask =
      (F::grid_sample(
         mask,
         grid,
         F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false)) >= 0.5)
        .to(torch::kFloat32);
  }
  // Drawn only when on, so that runs without it keep their batches.
  if (options.MaximumDeformation > 0.0 && Uniform(generator, 0, 1) < 0.5)
  {
    const double spacing = options.PreprocessingContract.WorkingSpacing[0];
    KDBrainExtractionDeformNonlinearly(image, mask, options.MaximumDeformation / spacing, generator);
  }
  if (Uniform(generator, 0, 1) < 0.5)
  {
    image =
      DegradeResolution(image, options.MaximumIsotropicCoarsening, options.MaximumSliceThicknessFactor, generator);
  }
  // Intensity: gamma, global scale, a smooth multiplicative bias field, noise.
  image = image.clamp_min(0).pow(std::exp(Uniform(generator, std::log(0.7), std::log(1.5))));
  image = image * Uniform(generator, 0.9, 1.1);
  {
    const auto z = torch::linspace(-1, 1, image.size(2)).view({ 1, 1, -1, 1, 1 });
    const auto y = torch::linspace(-1, 1, image.size(3)).view({ 1, 1, 1, -1, 1 });
    const auto x = torch::linspace(-1, 1, image.size(4)).view({ 1, 1, 1, 1, -1 });
    const auto field = z * Uniform(generator, -0.3, 0.3) + y * Uniform(generator, -0.3, 0.3) +
                       x * Uniform(generator, -0.3, 0.3) + z * z * Uniform(generator, -0.2, 0.2) +
                       y * y * Uniform(generator, -0.2, 0.2) + x * x * Uniform(generator, -0.2, 0.2);
    image = image * torch::exp(field);
  }
  const double noise = Uniform(generator, 0.0, 0.03);
  if (noise > 0)
  {
    torch::Tensor gaussian = torch::empty_like(image);
    // Filled from the sample's generator, not torch's, to keep resumption exact.
    std::normal_distribution<float> normal(0.0f, static_cast<float>(noise));
    float *                         values = gaussian.data_ptr<float>();
    for (int64_t i = 0; i < gaussian.numel(); ++i)
    {
      values[i] = normal(generator);
    }
    image = image + gaussian;
  }
  image = image.clamp(0.0, 1.0);
}

/** A random contrast for a normalised image: a piecewise-linear curve
 * through (0, 0), (0.2, y1), ..., (1, y5) with every y drawn in [0, 1]. */
torch::Tensor
RemapIntensities(const torch::Tensor & image, std::mt19937_64 & generator)
{
  constexpr int64_t  intervals = 5;
  std::vector<float> nodes{ 0.0f };
  for (int64_t node = 1; node <= intervals; ++node)
  {
    nodes.push_back(static_cast<float>(Uniform(generator, 0, 1)));
  }
  const auto values = torch::tensor(nodes);
  const auto position = image.clamp(0.0, 1.0) * intervals;
  const auto lower = position.floor().clamp_max(intervals - 1).to(torch::kLong);
  const auto fraction = position - lower.to(torch::kFloat32);
  const auto start = values.index({ lower });
  return start + (values.index({ lower + 1 }) - start) * fraction;
}

struct Batch
{
  torch::Tensor Image;
  torch::Tensor Mask;
};

/** Training sample number \a sample ([1, 1, z, y, x] image and mask): a
 * function of the seed and \a sample alone, so that samples can be prepared
 * in any order, on any thread, and resumption stays exact. */
Batch
MakeSample(const std::vector<WorkingCase> & cases, uint64_t sample, const KDBrainExtractionTrainer::Options & options,
           const std::vector<ContrastFamily> &              syntheticContrasts,
           const KDBrainExtractionPreprocessing::Contract & contract)
{
  const WorkingCase & item = cases[CaseOfSample(sample, cases.size(), options.Seed)];
  auto                generator = SampleGenerator(options.Seed, sample, 0xA06);
  torch::Tensor       image = item.Image;
  torch::Tensor       mask = item.Mask;
  // Drawn only when synthesis is on, so that runs without it keep their
  // batches; a case with no image is always painted.
  if (item.LabelsOnly ||
      (options.SyntheticFraction > 0.0 && item.TissueClasses && Uniform(generator, 0, 1) < options.SyntheticFraction))
  {
    const auto contrast =
      syntheticContrasts[std::uniform_int_distribution<std::size_t>(0, syntheticContrasts.size() - 1)(generator)];
    TissueClassImageType::ConstPointer classes = item.TissueClasses.GetPointer();
    if (options.AtrophyFraction > 0.0 && Uniform(generator, 0, 1) < options.AtrophyFraction)
    {
      classes = KDBrainExtractionSimulateAtrophy(item.TissueClasses, mask, generator).GetPointer();
    }
    image = SynthesiseImage(classes, contrast, generator(), contract);
  }
  // Drawn only when remapping is on, so that runs without it keep their batches.
  else if (options.IntensityRemappingFraction > 0.0 && Uniform(generator, 0, 1) < options.IntensityRemappingFraction)
  {
    image = RemapIntensities(image, generator);
  }
  if (options.FieldOfViewCropFraction > 0.0 && Uniform(generator, 0, 1) < options.FieldOfViewCropFraction &&
      item.HasBrain)
  {
    KDBrainExtractionCropFieldOfView(item.BrainLow, item.BrainHigh, image, mask, generator);
  }
  if (options.PatchSize > 0)
  {
    const int64_t patch = options.PatchSize;
    const auto    start = ChoosePatchStart(item, patch, generator);
    for (int axis = 0; axis < 3; ++axis)
    {
      image = image.narrow(axis + 1, start[axis], std::min(patch, image.size(axis + 1)));
      mask = mask.narrow(axis + 1, start[axis], std::min(patch, mask.size(axis + 1)));
    }
    image = PadTo(image, { patch, patch, patch });
    mask = PadTo(mask, { patch, patch, patch });
  }
  image = image.unsqueeze(0);
  mask = mask.unsqueeze(0);
  if (options.Augment)
  {
    Augment(image, mask, options, generator);
  }
  return { image, mask };
}

/** The batches of consecutive steps. With loader threads, the samples of a
 * batch are prepared in parallel and the next step's batch is prepared while
 * the network trains on the current one; synthesis and augmentation run on the
 * CPU, and on a GPU they would otherwise leave it waiting. The batches are the
 * same with or without loader threads (see MakeSample). */
class BatchSource
{
public:
  BatchSource(const std::vector<WorkingCase> & cases, const KDBrainExtractionTrainer::Options & options,
              const std::vector<ContrastFamily> &              syntheticContrasts,
              const KDBrainExtractionPreprocessing::Contract & contract, unsigned int loaderThreads)
    : m_Cases(cases)
    , m_Options(options)
    , m_SyntheticContrasts(syntheticContrasts)
    , m_Contract(contract)
    , m_LoaderThreads(loaderThreads)
  {}

  /** The batch of \a step; prepares that of step + 1 ahead when it is below
   * \a endStep. */
  Batch
  Get(uint64_t step, uint64_t endStep)
  {
    Batch batch;
    if (m_Next.valid() && m_NextStep == step)
    {
      batch = m_Next.get();
    }
    else
    {
      if (m_Next.valid())
      {
        m_Next.wait();
        m_Next = {};
      }
      batch = Make(step);
    }
    if (m_LoaderThreads > 0 && step + 1 < endStep)
    {
      m_NextStep = step + 1;
      m_Next = std::async(std::launch::async, [this, step]() { return Make(step + 1); });
    }
    return batch;
  }

private:
  Batch
  Make(uint64_t step) const
  {
    const unsigned int         batchSize = m_Options.BatchSize;
    std::vector<torch::Tensor> images(batchSize);
    std::vector<torch::Tensor> masks(batchSize);
    const auto                 prepare = [&](unsigned int first, unsigned int stride) {
      for (unsigned int b = first; b < batchSize; b += stride)
      {
        const Batch sample = MakeSample(m_Cases, step * batchSize + b, m_Options, m_SyntheticContrasts, m_Contract);
        images[b] = sample.Image;
        masks[b] = sample.Mask;
      }
    };
    const unsigned int             workers = std::max(1u, std::min(m_LoaderThreads, batchSize));
    std::vector<std::future<void>> others;
    for (unsigned int worker = 1; worker < workers; ++worker)
    {
      others.push_back(std::async(std::launch::async, prepare, worker, workers));
    }
    prepare(0, workers);
    for (auto & other : others)
    {
      other.get();
    }
    return { torch::cat(images, 0), torch::cat(masks, 0) };
  }

  const std::vector<WorkingCase> &                 m_Cases;
  const KDBrainExtractionTrainer::Options &        m_Options;
  const std::vector<ContrastFamily> &              m_SyntheticContrasts;
  const KDBrainExtractionPreprocessing::Contract & m_Contract;
  const unsigned int                               m_LoaderThreads;
  /** The batch prepared ahead (std::async: destroying it waits for it). */
  std::future<Batch> m_Next;
  uint64_t           m_NextStep{ 0 };
};

/** Loader threads of BatchSource: as asked, or by default none on the CPU
 * (the network's threads keep every core busy there) and, on a GPU, one per
 * sample of a batch, leaving a core for the main thread. */
unsigned int
NumberOfLoaderThreads(const KDBrainExtractionTrainer::Options & options, const torch::Device & device)
{
  if (options.NumberOfLoaderThreads >= 0)
  {
    return static_cast<unsigned int>(options.NumberOfLoaderThreads);
  }
  if (device.is_cpu())
  {
    return 0;
  }
  const unsigned int cores = std::max(2u, std::thread::hardware_concurrency());
  return std::min(options.BatchSize, cores - 1);
}

/** Re-estimates the batch-normalisation running statistics as plain averages
 * over options.BatchNormRecalibrationBatches training batches (forward passes only; weights,
 * dropout and the optimizer are untouched). The moving averages of training
 * weigh the last ~10 batches most (momentum 0.1): with batches of two patches
 * they follow whatever those few patches were, and the network at inference
 * normalises with them. The batches continue the training stream after
 * step \a firstStep, so the result is a function of the seed alone. */
void
RecalibrateBatchNorm(UNetPlusPlus & network, BatchSource & batches, uint64_t firstStep, unsigned int numberOfBatches,
                     const torch::Device & device)
{
  std::vector<torch::nn::BatchNorm3dImpl *> batchNorms;
  for (const auto & module : network->modules(false))
  {
    if (auto * batchNorm = module->as<torch::nn::BatchNorm3d>())
    {
      batchNorms.push_back(batchNorm);
    }
  }
  if (batchNorms.empty())
  {
    return;
  }
  torch::NoGradGuard noGrad;
  // Training mode, so that batch norm uses and records batch statistics
  // (UNet++ in evaluation mode folds it into the convolutions); dropout off.
  network->train();
  for (const auto & module : network->modules(false))
  {
    if (module->as<torch::nn::Dropout3d>())
    {
      module->eval();
    }
  }
  std::vector<c10::optional<double>> momenta;
  for (auto * batchNorm : batchNorms)
  {
    momenta.push_back(batchNorm->options.momentum());
    // No momentum: a cumulative average over the batches since the reset.
    batchNorm->options.momentum(c10::nullopt);
    batchNorm->reset_running_stats();
  }
  const uint64_t endStep = firstStep + numberOfBatches;
  for (uint64_t step = firstStep; step < endStep; ++step)
  {
    const Batch batch = batches.Get(step, endStep);
    network->ForwardHeads(batch.Image.to(device));
  }
  for (std::size_t index = 0; index < batchNorms.size(); ++index)
  {
    batchNorms[index]->options.momentum(momenta[index]);
  }
  network->eval();
}

std::string
FormatDuration(double seconds)
{
  const auto         total = static_cast<long>(std::max(0.0, seconds));
  std::ostringstream text;
  text << std::setfill('0') << std::setw(2) << total / 3600 << ":" << std::setw(2) << (total / 60) % 60 << ":"
       << std::setw(2) << total % 60;
  return text.str();
}

void
SaveCheckpoint(const std::string & fileName, UNetPlusPlus & network, torch::optim::Adam & optimizer,
               const std::vector<torch::Tensor> & weightAverage, uint64_t step, double seconds)
{
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive networkArchive;
  network->save(networkArchive);
  archive.write("network", networkArchive);
  for (std::size_t index = 0; index < weightAverage.size(); ++index)
  {
    archive.write("weight_average." + std::to_string(index), weightAverage[index]);
  }
  torch::serialize::OutputArchive optimizerArchive;
  optimizer.save(optimizerArchive);
  archive.write("optimizer", optimizerArchive);
  archive.write("step", torch::tensor(static_cast<int64_t>(step)));
  archive.write("seconds", torch::tensor(seconds, torch::kFloat64));
  std::ostringstream bytes(std::ios::binary);
  archive.save_to(bytes);
  KDBrainExtractionOutputFile::WriteBytes(bytes.str(), fileName, "the checkpoint");
}

/** Student: Dice of the thresholded probability; teacher: MAE of the brain image. */
double
Validate(UNetPlusPlus & network, KDBrainExtractionTorchModel::RoleEnum role, const std::vector<WorkingCase> & cases,
         const torch::Device & device)
{
  torch::NoGradGuard noGrad;
  network->eval();
  double        total = 0.0;
  const int64_t multiple = 1 << network->GetOptions().Depth;
  for (const auto & item : cases)
  {
    std::array<int64_t, 3> padded;
    for (int axis = 0; axis < 3; ++axis)
    {
      padded[axis] = (item.Image.size(axis + 1) + multiple - 1) / multiple * multiple;
    }
    const auto input = PadTo(item.Image, padded).unsqueeze(0).to(device);
    auto       output = network->forward(input).to(torch::kCPU);
    output = output.slice(2, 0, item.Image.size(1)).slice(3, 0, item.Image.size(2)).slice(4, 0, item.Image.size(3));
    if (role == KDBrainExtractionTorchModel::RoleEnum::Student)
    {
      const auto mask = (output[0] > 0).to(torch::kFloat32);
      total += KDBrainExtractionSoftDice(mask, item.Mask).item<double>();
    }
    else
    {
      total += (torch::sigmoid(output[0]) - item.Image * item.Mask).abs().mean().item<double>();
    }
  }
  network->train();
  return cases.empty() ? 0.0 : total / cases.size();
}
} // namespace

Image<unsigned char, 3>::Pointer
KDBrainExtractionSimulateAtrophy(const Image<unsigned char, 3> * classes, torch::Tensor & mask,
                                 std::mt19937_64 & generator)
{
  using TissueClass = HeadTissueEnums::TissueClass;
  using TissueClassImageType = Image<unsigned char, 3>;
  auto aged = TissueClassImageType::New();
  aged->CopyInformation(classes);
  aged->SetRegions(classes->GetBufferedRegion());
  aged->Allocate();
  const auto        size = classes->GetBufferedRegion().GetSize();
  const std::size_t count = classes->GetBufferedRegion().GetNumberOfPixels();
  std::copy_n(classes->GetBufferPointer(), count, aged->GetBufferPointer());
  mask = mask.clone();
  float *                    inside = mask.data_ptr<float>();
  unsigned char *            tissue = aged->GetBufferPointer();
  const std::size_t          strides[3] = { 1, size[0], size[0] * size[1] };
  const double               probability = Uniform(generator, 0.2, 0.8);
  const int                  passes = Uniform(generator, 0, 1) < 0.5 ? 1 : 2;
  const auto                 code = [](TissueClass value) { return static_cast<unsigned char>(value); };
  std::vector<unsigned char> before(count);
  for (int pass = 0; pass < passes; ++pass)
  {
    std::copy_n(tissue, count, before.begin());
    for (std::size_t i = 0; i < count; ++i)
    {
      const bool grey = before[i] == code(TissueClass::GreyMatter);
      if (!grey && before[i] != code(TissueClass::WhiteMatter))
      {
        continue;
      }
      bool touchesOuterCSF = false;
      bool touchesInnerCSF = false;
      for (unsigned int axis = 0; axis < 3; ++axis)
      {
        const std::size_t coordinate = (i / strides[axis]) % size[axis];
        for (const bool up : { false, true })
        {
          if ((up && coordinate + 1 == size[axis]) || (!up && coordinate == 0))
          {
            continue;
          }
          const unsigned char neighbour = before[up ? i + strides[axis] : i - strides[axis]];
          touchesOuterCSF = touchesOuterCSF || neighbour == code(TissueClass::ExtraCerebralCSF);
          touchesInnerCSF = touchesInnerCSF || neighbour == code(TissueClass::BrainCSF);
        }
      }
      if (!(touchesOuterCSF || touchesInnerCSF) || Uniform(generator, 0, 1) >= probability)
      {
        continue;
      }
      if (grey && touchesOuterCSF)
      {
        tissue[i] = code(TissueClass::ExtraCerebralCSF);
        inside[i] = 0.0f;
      }
      else if (touchesInnerCSF)
      {
        tissue[i] = code(TissueClass::BrainCSF);
      }
    }
  }
  return aged;
}

void
KDBrainExtractionCropFieldOfView(const std::array<int64_t, 3> & brainLow, const std::array<int64_t, 3> & brainHigh,
                                 torch::Tensor & image, torch::Tensor & mask, std::mt19937_64 & generator)
{
  const int     axis = Uniform(generator, 0, 1) < 0.6 ? 0 : 1;
  const bool    high = Uniform(generator, 0, 1) < 0.5;
  const auto    offset = static_cast<int64_t>(std::floor(Uniform(generator, -8, 12)));
  const int64_t extent = image.size(axis + 1);
  image = image.clone();
  mask = mask.clone();
  if (high)
  {
    const int64_t plane = std::clamp<int64_t>(brainHigh[axis] - offset, 1, extent);
    image.narrow(axis + 1, plane, extent - plane).zero_();
    mask.narrow(axis + 1, plane, extent - plane).zero_();
  }
  else
  {
    const int64_t plane = std::clamp<int64_t>(brainLow[axis] + offset, 0, extent - 1);
    image.narrow(axis + 1, 0, plane).zero_();
    mask.narrow(axis + 1, 0, plane).zero_();
  }
}

void
KDBrainExtractionDeformNonlinearly(torch::Tensor & image, torch::Tensor & mask, double maximumVoxels,
                                   std::mt19937_64 & generator)
{
  namespace F = torch::nn::functional;
  constexpr int64_t control = 5;
  auto              displacement = torch::empty({ 1, 3, control, control, control });
  float *           values = displacement.data_ptr<float>();
  // Drawn from the sample's generator, not torch's, to keep resumption exact.
  for (int64_t i = 0; i < displacement.numel(); ++i)
  {
    values[i] = static_cast<float>(Uniform(generator, -maximumVoxels, maximumVoxels));
  }
  const auto size = image.sizes().slice(2).vec();
  displacement =
    F::interpolate(displacement, F::InterpolateFuncOptions().size(size).mode(torch::kTrilinear).align_corners(true));
  // grid_sample's last dimension is (x, y, z) in [-1, 1]: channel 0 moves x.
  std::vector<torch::Tensor> normalised;
  for (int axis = 0; axis < 3; ++axis)
  {
    normalised.push_back(displacement.select(1, axis) * (2.0 / static_cast<double>(size[2 - axis])));
  }
  const auto identity = torch::eye(3, 4).unsqueeze(0);
  const auto grid = F::affine_grid(identity, image.sizes().vec(), false) + torch::stack(normalised, -1);
  const auto linear =
    F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false);
  image = F::grid_sample(image, grid, linear);
  mask = (F::grid_sample(mask, grid, linear) >= 0.5).to(torch::kFloat32);
}

std::vector<KDBrainExtractionTrainer::Case>
KDBrainExtractionTrainer::ReadManifest(const std::string & fileName)
{
  std::ifstream file(fileName);
  if (!file)
  {
    itkGenericExceptionMacro(<< fileName << ": cannot open the manifest");
  }
  auto split = [](const std::string & line) {
    std::vector<std::string> fields;
    std::string              field;
    std::istringstream       stream(line);
    while (std::getline(stream, field, ','))
    {
      while (!field.empty() && (field.back() == '\r' || field.back() == ' '))
      {
        field.pop_back();
      }
      fields.push_back(field);
    }
    return fields;
  };
  std::string line;
  if (!std::getline(file, line))
  {
    itkGenericExceptionMacro(<< fileName << ": the manifest is empty");
  }
  const auto header = split(line);
  auto       column = [&header](std::initializer_list<const char *> names) -> int {
    for (const char * name : names)
    {
      const auto found = std::find(header.begin(), header.end(), name);
      if (found != header.end())
      {
        return static_cast<int>(found - header.begin());
      }
    }
    return -1;
  };
  const int subjectColumn = column({ "subject", "id" });
  const int imageColumn = column({ "image", "t1" });
  const int maskColumn = column({ "mask", "brainmask" });
  const int labelsColumn = column({ "labels", "dlmuse" });
  const int modalityColumn = column({ "modality" });
  if (imageColumn < 0 || maskColumn < 0)
  {
    itkGenericExceptionMacro(<< fileName
                             << ": the manifest needs an 'image' (or 't1') and a 'mask' (or "
                                "'brainmask') column");
  }
  const std::string directory = itksys::SystemTools::GetFilenamePath(itksys::SystemTools::CollapseFullPath(fileName));
  auto              resolve = [&directory](const std::string & path) {
    return path.empty() || itksys::SystemTools::FileIsFullPath(path) ? path : directory + "/" + path;
  };
  std::vector<Case> cases;
  unsigned int      lineNumber = 1;
  while (std::getline(file, line))
  {
    ++lineNumber;
    if (line.empty() || line == "\r")
    {
      continue;
    }
    const auto fields = split(line);
    auto       field = [&fields](int index) {
      return index >= 0 && index < static_cast<int>(fields.size()) ? fields[index] : std::string();
    };
    Case item;
    item.Image = resolve(field(imageColumn));
    item.Mask = resolve(field(maskColumn));
    item.Labels = resolve(field(labelsColumn));
    item.Modality = field(modalityColumn);
    item.Subject =
      subjectColumn >= 0 ? field(subjectColumn) : itksys::SystemTools::GetFilenameWithoutExtension(item.Image);
    if (item.Image.empty() || item.Mask.empty())
    {
      itkGenericExceptionMacro(<< fileName << ":" << lineNumber << ": the row has no image or no mask");
    }
    cases.push_back(item);
  }
  if (cases.empty())
  {
    itkGenericExceptionMacro(<< fileName << ": the manifest lists no cases");
  }
  return cases;
}

namespace
{
/** Throws an ExceptionObject naming the problem where \a options cannot
 * train on \a cases; returns the contrast families to paint. */
std::vector<ContrastFamily>
VerifyTrainingOptions(const std::vector<KDBrainExtractionTrainer::Case> & cases,
                      const KDBrainExtractionTrainer::Options &           options)
{
  using Case = KDBrainExtractionTrainer::Case;
  if (cases.empty())
  {
    itkGenericExceptionMacro(<< "no training cases");
  }
  if (options.BatchSize == 0)
  {
    itkGenericExceptionMacro(<< "the batch size must be positive");
  }
  if (options.NumberOfSteps == 0 && options.InitialModelFile.empty())
  {
    itkGenericExceptionMacro(<< "the number of steps must be positive (0 only with an initial model, to "
                                "re-estimate its batch-norm statistics)");
  }
  if (options.DistillationWeight < 0.0 || options.DistillationWeight > 1.0)
  {
    itkGenericExceptionMacro(<< "the distillation weight must be in [0, 1], got " << options.DistillationWeight);
  }
  if (options.DistillationMode != "image" && options.DistillationMode != "soft-mask")
  {
    itkGenericExceptionMacro(<< "unknown distillation mode '" << options.DistillationMode
                             << "' (use image or soft-mask)");
  }
  if (options.WeightAveragingSteps > options.NumberOfSteps)
  {
    itkGenericExceptionMacro(<< "cannot average the weights over the last " << options.WeightAveragingSteps
                             << " steps of " << options.NumberOfSteps);
  }
  if (!(options.MaximumIsotropicCoarsening >= 1.0 && options.MaximumIsotropicCoarsening <= 4.0))
  {
    itkGenericExceptionMacro(<< "the maximum isotropic coarsening must be in [1, 4], got "
                             << options.MaximumIsotropicCoarsening);
  }
  if (!(options.IntensityRemappingFraction >= 0.0 && options.IntensityRemappingFraction <= 1.0))
  {
    itkGenericExceptionMacro(<< "the intensity remapping fraction must be in [0, 1], got "
                             << options.IntensityRemappingFraction);
  }
  if (options.SyntheticFraction < 0.0 || options.SyntheticFraction > 1.0)
  {
    itkGenericExceptionMacro(<< "the synthetic fraction must be in [0, 1], got " << options.SyntheticFraction);
  }
  if (!(options.AtrophyFraction >= 0.0 && options.AtrophyFraction <= 1.0))
  {
    itkGenericExceptionMacro(<< "the atrophy fraction must be in [0, 1], got " << options.AtrophyFraction);
  }
  if (!(options.FieldOfViewCropFraction >= 0.0 && options.FieldOfViewCropFraction <= 1.0))
  {
    itkGenericExceptionMacro(<< "the field-of-view crop fraction must be in [0, 1], got "
                             << options.FieldOfViewCropFraction);
  }
  if (!(options.MaximumDeformation >= 0.0 && options.MaximumDeformation <= 20.0))
  {
    itkGenericExceptionMacro(<< "the maximum deformation must be in [0, 20] mm, got " << options.MaximumDeformation);
  }
  if (!(options.MaximumSliceThicknessFactor >= 1.2 && options.MaximumSliceThicknessFactor <= 5.0))
  {
    itkGenericExceptionMacro(<< "the maximum slice thickness factor must be in [1.2, 5], got "
                             << options.MaximumSliceThicknessFactor);
  }
  for (const auto & item : options.ValidationCases)
  {
    if (item.Image.empty() || item.Mask.empty())
    {
      itkGenericExceptionMacro(<< item.Subject << ": a validation case needs an image and a mask");
    }
  }
  std::vector<ContrastFamily> syntheticContrasts;
  for (const auto & name : options.SyntheticContrasts)
  {
    syntheticContrasts.push_back(ParseContrastFamily(name));
  }
  const bool synthesise = options.SyntheticFraction > 0.0;
  const auto labelMapCases = std::count_if(cases.begin(), cases.end(), IsLabelMapCase);
  if ((synthesise || labelMapCases > 0) && syntheticContrasts.empty())
  {
    itkGenericExceptionMacro(<< "synthetic images need at least one contrast family");
  }
  if (synthesise && std::none_of(cases.begin(), cases.end(), [](const Case & item) { return !item.Labels.empty(); }))
  {
    itkGenericExceptionMacro(<< "synthetic images need label maps, and no training case has one "
                                "(a 'labels' or 'dlmuse' column in the manifest)");
  }
  return syntheticContrasts;
}

/** The teacher whose output a distilled student learns, on \a device, in
 * evaluation mode; null for a teacher, or a student without distillation. */
KDBrainExtractionTorchModel::Pointer
LoadDistillationTeacher(const KDBrainExtractionTrainer::Options &        options,
                        const KDBrainExtractionPreprocessing::Contract & contract, const torch::Device & device)
{
  using RoleEnum = KDBrainExtractionTorchModel::RoleEnum;
  if (options.Role != RoleEnum::Student || options.DistillationWeight <= 0.0)
  {
    return nullptr;
  }
  if (options.TeacherModelFile.empty())
  {
    itkGenericExceptionMacro(<< "distillation (weight " << options.DistillationWeight
                             << ") needs a teacher model file; use weight 0 for the plain UNet++");
  }
  auto teacher = KDBrainExtractionTorchModel::New();
  teacher->Load(options.TeacherModelFile);
  if (teacher->GetRole() != RoleEnum::Teacher)
  {
    itkGenericExceptionMacro(<< options.TeacherModelFile << ": is a "
                             << KDBrainExtractionTorchModel::RoleToString(teacher->GetRole())
                             << " model, a teacher is needed for distillation");
  }
  if (teacher->GetContract().WorkingSpacing != contract.WorkingSpacing)
  {
    itkGenericExceptionMacro(<< options.TeacherModelFile
                             << ": the teacher works at a different spacing than the student");
  }
  teacher->GetImplementation().Network->to(device);
  teacher->GetImplementation().Network->eval();
  return teacher;
}

/** The training cases on the working grid, whole volumes padded to the
 * largest when training is not on patches. */
std::vector<WorkingCase>
LoadTrainingCases(const std::vector<KDBrainExtractionTrainer::Case> & cases,
                  const KDBrainExtractionTrainer::Options &           options,
                  const KDBrainExtractionPreprocessing::Contract & contract, bool synthesise)
{
  std::vector<WorkingCase> training;
  // A case listed several times (a label map weighted up) is loaded once;
  // its copies share the read-only tensors and classes.
  std::map<std::string, std::size_t> loaded;
  for (const auto & item : cases)
  {
    const std::string key = item.Image + '\n' + item.Mask + '\n' + item.Labels;
    const auto        found = loaded.find(key);
    if (found != loaded.end())
    {
      training.push_back(training[found->second]);
      continue;
    }
    loaded[key] = training.size();
    training.push_back(LoadCase(item, contract, synthesise));
  }
  if (options.PatchSize == 0)
  {
    // Whole volumes are batched, so they share the largest working size.
    std::array<int64_t, 3> largest{ 0, 0, 0 };
    for (const auto & item : training)
    {
      for (int axis = 0; axis < 3; ++axis)
      {
        largest[axis] = std::max(largest[axis], item.Image.size(axis + 1));
      }
    }
    for (auto & item : training)
    {
      item.Image = PadTo(item.Image, largest);
      item.Mask = PadTo(item.Mask, largest);
    }
  }
  return training;
}

/** Copies the weights and buffers of options.InitialModelFile into
 * \a network; returns that model's checksum (empty without one). */
std::string
CopyInitialWeights(const KDBrainExtractionTrainer::Options & options, UNetPlusPlus & network)
{
  if (options.InitialModelFile.empty())
  {
    return std::string();
  }
  auto initial = KDBrainExtractionTorchModel::New();
  initial->Load(options.InitialModelFile);
  if (initial->GetRole() != options.Role ||
      !KDBrainExtractionHaveSameWeightLayout(initial->GetArchitecture(), options.NetworkArchitecture))
  {
    itkGenericExceptionMacro(<< options.InitialModelFile
                             << ": the initial model must have the role and architecture being trained");
  }
  torch::NoGradGuard noGrad;
  const auto         source = initial->GetImplementation().Network->named_parameters(true);
  for (auto & parameter : network->named_parameters(true))
  {
    parameter.value().copy_(source[parameter.key()]);
  }
  const auto sourceBuffers = initial->GetImplementation().Network->named_buffers(true);
  for (auto & buffer : network->named_buffers(true))
  {
    buffer.value().copy_(sourceBuffers[buffer.key()]);
  }
  return initial->GetChecksum();
}

/** Where a resumed run goes on: the step and seconds of its checkpoint. */
struct TrainingProgress
{
  uint64_t Step{ 0 };
  double   Seconds{ 0.0 };
};

/** Restores network, optimizer and weight average from a checkpoint that
 * SaveCheckpoint wrote. */
TrainingProgress
ResumeFromCheckpoint(const std::string & fileName, UNetPlusPlus & network, torch::optim::Adam & optimizer,
                     std::vector<torch::Tensor> & weightAverage, const torch::Device & device)
{
  TrainingProgress               progress;
  torch::serialize::InputArchive archive;
  archive.load_from(fileName, device);
  torch::serialize::InputArchive networkArchive;
  archive.read("network", networkArchive);
  network->load(networkArchive);
  torch::serialize::InputArchive optimizerArchive;
  archive.read("optimizer", optimizerArchive);
  optimizer.load(optimizerArchive);
  torch::Tensor step;
  archive.read("step", step);
  torch::Tensor seconds;
  archive.read("seconds", seconds);
  progress.Step = static_cast<uint64_t>(step.item<int64_t>());
  progress.Seconds = seconds.item<double>();
  for (std::size_t index = 0; index < weightAverage.size(); ++index)
  {
    if (!archive.try_read("weight_average." + std::to_string(index), weightAverage[index]))
    {
      itkGenericExceptionMacro(<< fileName
                               << ": the checkpoint holds no weight average (written without weight averaging)");
    }
  }
  return progress;
}

/** One step's losses, each averaged over the network's heads. */
struct StepLosses
{
  torch::Tensor Loss; // (1 - a) Segmentation + a Distillation
  torch::Tensor Segmentation;
  torch::Tensor Distillation;
};

/** L = (1 - a) L_seg + a L_distill on \a batch (on the network's device),
 * with L_distill against \a teacher's output (none without a teacher). */
StepLosses
ComputeStepLosses(UNetPlusPlus & network, const KDBrainExtractionTorchModel * teacher, const Batch & batch,
                  const KDBrainExtractionTrainer::Options & options)
{
  using RoleEnum = KDBrainExtractionTorchModel::RoleEnum;
  const auto    heads = network->ForwardHeads(batch.Image);
  StepLosses    losses;
  torch::Tensor teacherOutput;
  losses.Segmentation = torch::zeros({}, batch.Image.options());
  losses.Distillation = torch::zeros({}, batch.Image.options());
  if (teacher)
  {
    torch::NoGradGuard noGrad;
    teacherOutput = torch::sigmoid(teacher->GetImplementation().Network->forward(batch.Image));
    if (options.DistillationMode == "soft-mask")
    {
      // Brain-only image / image: ~1 in the brain, ~0 outside; undefined
      // where the image is dark, which the teacher leaves dark anyway.
      teacherOutput = torch::where(batch.Image > 0.05,
                                   (teacherOutput / batch.Image.clamp_min(0.05)).clamp(0.0, 1.0),
                                   torch::zeros_like(teacherOutput));
    }
  }
  // Both roles predict values in [0, 1] through a sigmoid, which keeps the
  // soft Dice term a true Dice (an unbounded output could push it above 1).
  const torch::Tensor target = options.Role == RoleEnum::Teacher ? batch.Image * batch.Mask : batch.Mask;
  for (const auto & head : heads)
  {
    const auto prediction = torch::sigmoid(head);
    losses.Segmentation = losses.Segmentation + KDBrainExtractionHybridLoss(prediction, target).Loss;
    if (teacher)
    {
      losses.Distillation = losses.Distillation + KDBrainExtractionMeanSquaredError(prediction, teacherOutput);
    }
  }
  losses.Segmentation = losses.Segmentation / static_cast<double>(heads.size());
  losses.Distillation = losses.Distillation / static_cast<double>(heads.size());
  const double a = teacher ? options.DistillationWeight : 0.0;
  losses.Loss = (1.0 - a) * losses.Segmentation + a * losses.Distillation;
  return losses;
}

/** Sums of the losses of the steps since the last epoch's end. */
struct EpochLosses
{
  double       Loss{ 0.0 };
  double       Segmentation{ 0.0 };
  double       Distillation{ 0.0 };
  unsigned int Steps{ 0 };
};

/** The end of epoch \a epoch, at step \a step: the mean losses and, with
 * \a validation cases, the validation score (Dice for a student, MAE for a
 * teacher) as a line of \a jsonLog (if open); the score also to \a log. */
void
ReportEpoch(uint64_t epoch, uint64_t step, const EpochLosses & losses, double stepsPerSecond, double seconds,
            UNetPlusPlus & network, const std::vector<WorkingCase> & validation,
            const KDBrainExtractionTrainer::Options & options, const torch::Device & device, std::ofstream & jsonLog,
            std::ostream & log)
{
  using RoleEnum = KDBrainExtractionTorchModel::RoleEnum;
  const std::string role = KDBrainExtractionTorchModel::RoleToString(options.Role);
  const double      validationScore = validation.empty() ? 0.0 : Validate(network, options.Role, validation, device);
  if (jsonLog)
  {
    jsonLog << "{\"role\":\"" << role << "\",\"epoch\":" << epoch << ",\"step\":" << step
            << ",\"loss\":" << losses.Loss / losses.Steps
            << ",\"segmentation_loss\":" << losses.Segmentation / losses.Steps
            << ",\"distillation_loss\":" << losses.Distillation / losses.Steps
            << ",\"steps_per_second\":" << stepsPerSecond << ",\"seconds\":" << seconds;
    if (!validation.empty())
    {
      jsonLog << ",\"" << (options.Role == RoleEnum::Student ? "validation_dice" : "validation_mae")
              << "\":" << validationScore;
    }
    jsonLog << "}" << std::endl;
  }
  if (!validation.empty())
  {
    log << "[" << role << "] step " << step << " validation " << (options.Role == RoleEnum::Student ? "Dice " : "MAE ")
        << validationScore << std::endl;
  }
}

/** How the model was trained, in its metadata (saved with it). */
void
RecordTrainingMetadata(KDBrainExtractionTorchModel & model, std::size_t numberOfCases, std::size_t labelMapCases,
                       const KDBrainExtractionTrainer::Options & options, const KDBrainExtractionTorchModel * teacher,
                       const std::string & initialChecksum, double totalSeconds, double lastLoss)
{
  using Options = KDBrainExtractionTrainer::Options;
  std::ostringstream distillation;
  distillation << (teacher ? options.DistillationMode : std::string("none")) << ", weight "
               << (teacher ? options.DistillationWeight : 0.0);
  if (teacher)
  {
    distillation << ", teacher checksum " << teacher->GetChecksum();
  }
  model.SetMetadata("training.cases", std::to_string(numberOfCases));
  model.SetMetadata("training.steps", std::to_string(options.NumberOfSteps));
  model.SetMetadata("training.batch_size", std::to_string(options.BatchSize));
  model.SetMetadata("training.patch_size", std::to_string(options.PatchSize));
  model.SetMetadata("training.learning_rate", std::to_string(options.LearningRate));
  model.SetMetadata("training.weight_decay", std::to_string(options.WeightDecay));
  model.SetMetadata("training.augmentation", options.Augment ? "on" : "off");
  // Recorded when not the default, so that earlier models' headers stay as they were.
  const auto recordNumber = [&model](const std::string & key, double value, double defaultValue) {
    if (value != defaultValue)
    {
      std::ostringstream text;
      text << value;
      model.SetMetadata(key, text.str());
    }
  };
  if (options.Augment)
  {
    recordNumber(
      "training.max_isotropic_coarsening", options.MaximumIsotropicCoarsening, Options{}.MaximumIsotropicCoarsening);
  }
  recordNumber("training.intensity_remapping", options.IntensityRemappingFraction, 0.0);
  recordNumber("training.atrophy", options.AtrophyFraction, 0.0);
  recordNumber("training.field_of_view_crop", options.FieldOfViewCropFraction, 0.0);
  recordNumber("training.max_deformation_mm", options.MaximumDeformation, 0.0);
  recordNumber(
    "training.max_slice_thickness", options.MaximumSliceThicknessFactor, Options{}.MaximumSliceThicknessFactor);
  recordNumber("training.label_map_cases", static_cast<double>(labelMapCases), 0.0);
  model.SetMetadata("training.seed", std::to_string(options.Seed));
  model.SetMetadata("training.distillation", distillation.str());
  if (options.SyntheticFraction > 0.0)
  {
    std::ostringstream synthetic;
    synthetic << "fraction " << options.SyntheticFraction << ", contrasts";
    for (const auto & name : options.SyntheticContrasts)
    {
      synthetic << " " << name;
    }
    model.SetMetadata("training.synthetic", synthetic.str());
  }
  if (!initialChecksum.empty())
  {
    model.SetMetadata("training.initial_model", initialChecksum);
  }
  if (options.WeightAveragingSteps > 0)
  {
    model.SetMetadata("training.weight_averaging", "last " + std::to_string(options.WeightAveragingSteps) + " steps");
  }
  if (options.BatchNormRecalibrationBatches > 0)
  {
    model.SetMetadata("training.batch_norm_recalibration",
                      std::to_string(options.BatchNormRecalibrationBatches) + " batches");
  }
  model.SetMetadata("training.seconds", std::to_string(static_cast<long>(totalSeconds)));
  model.SetMetadata("training.final_loss", std::to_string(lastLoss));
}
} // namespace

KDBrainExtractionTorchModel::Pointer
KDBrainExtractionTrainer::Train(const std::vector<Case> & cases, const Options & options, std::ostream & log)
{
  const std::vector<ContrastFamily> syntheticContrasts = VerifyTrainingOptions(cases, options);
  KDBrainExtractionTorchModel::SetNumberOfThreads(options.NumberOfThreads);
  const torch::Device device = KDBrainExtractionParseDevice(options.Device);

  auto model = KDBrainExtractionTorchModel::New();
  model->Initialize(options.Role, options.NetworkArchitecture, options.PreprocessingContract, options.Seed);
  auto &                                     implementation = model->GetImplementation();
  const auto &                               contract = model->GetContract();
  const KDBrainExtractionTorchModel::Pointer teacher = LoadDistillationTeacher(options, contract, device);

  log << "Reading " << cases.size() << " training cases" << std::endl;
  const std::vector<WorkingCase> training =
    LoadTrainingCases(cases, options, contract, options.SyntheticFraction > 0.0);
  std::vector<WorkingCase> validation;
  for (const auto & item : options.ValidationCases)
  {
    validation.push_back(LoadCase(item, contract, false));
  }

  UNetPlusPlus &    network = implementation.Network;
  const std::string initialChecksum = CopyInitialWeights(options, network);
  network->to(device);
  network->train();
  torch::optim::Adam optimizer(network->parameters(),
                               torch::optim::AdamOptions(options.LearningRate).weight_decay(options.WeightDecay));

  // Stochastic weight averaging: the mean of the weights after each of the
  // last WeightAveragingSteps steps.
  const uint64_t             averagingStart = options.NumberOfSteps - options.WeightAveragingSteps;
  std::vector<torch::Tensor> weightAverage;
  if (options.WeightAveragingSteps > 0)
  {
    for (const auto & parameter : network->parameters())
    {
      weightAverage.push_back(torch::zeros_like(parameter));
    }
  }
  TrainingProgress resumed;
  if (!options.CheckpointFile.empty() && itksys::SystemTools::FileExists(options.CheckpointFile, true))
  {
    resumed = ResumeFromCheckpoint(options.CheckpointFile, network, optimizer, weightAverage, device);
    log << "Resuming from " << options.CheckpointFile << " at step " << resumed.Step << std::endl;
  }
  const uint64_t firstStep = resumed.Step;
  const double   previousSeconds = resumed.Seconds;

  std::ofstream jsonLog;
  if (!options.LogFile.empty())
  {
    jsonLog.open(options.LogFile, std::ios::app);
    if (!jsonLog)
    {
      itkGenericExceptionMacro(<< options.LogFile << ": cannot write the training log");
    }
  }

  const auto        start = Clock::now();
  auto              lastPrint = start;
  const std::string role = KDBrainExtractionTorchModel::RoleToString(options.Role);
  EpochLosses       epoch;
  double            lastLoss = 0.0;
  const uint64_t    samplesPerEpoch = training.size();
  uint64_t          step = firstStep;
  BatchSource       batches(training, options, syntheticContrasts, contract, NumberOfLoaderThreads(options, device));
  for (; step < options.NumberOfSteps; ++step)
  {
    // Dropout draws from torch's generator: seed it per step for exact resumption.
    torch::manual_seed(options.Seed * 1000003ull + step);
    Batch batch = batches.Get(step, options.NumberOfSteps);
    batch.Image = batch.Image.to(device);
    batch.Mask = batch.Mask.to(device);

    optimizer.zero_grad();
    const StepLosses losses = ComputeStepLosses(network, teacher, batch, options);
    losses.Loss.backward();
    optimizer.step();
    if (!weightAverage.empty() && step >= averagingStart)
    {
      torch::NoGradGuard noGrad;
      const auto         parameters = network->parameters();
      const double       count = static_cast<double>(step + 1 - averagingStart);
      for (std::size_t index = 0; index < weightAverage.size(); ++index)
      {
        weightAverage[index].add_(parameters[index] - weightAverage[index], 1.0 / count);
      }
    }

    lastLoss = losses.Loss.item<double>();
    epoch.Loss += lastLoss;
    epoch.Segmentation += losses.Segmentation.item<double>();
    epoch.Distillation += losses.Distillation.item<double>();
    ++epoch.Steps;

    const uint64_t done = step + 1;
    const auto     now = Clock::now();
    const double   seconds = std::chrono::duration<double>(now - start).count();
    const double   stepsPerSecond = (done - firstStep) / std::max(seconds, 1e-9);
    const double   secondsLeft = (options.NumberOfSteps - done) / stepsPerSecond;
    if (options.StepCallback)
    {
      options.StepCallback({ options.Role, done, options.NumberOfSteps, lastLoss, stepsPerSecond, secondsLeft });
    }
    else if (done == options.NumberOfSteps || std::chrono::duration<double>(now - lastPrint).count() >= 30.0)
    {
      lastPrint = now;
      log << "[" << role << "] step " << done << "/" << options.NumberOfSteps << " loss " << std::fixed
          << std::setprecision(4) << lastLoss << " " << std::setprecision(3) << stepsPerSecond << " steps/s ETA "
          << FormatDuration(secondsLeft) << std::defaultfloat << std::endl;
    }

    const bool epochEnd = (done * options.BatchSize) / samplesPerEpoch > (step * options.BatchSize) / samplesPerEpoch;
    if ((epochEnd || done == options.NumberOfSteps) && epoch.Steps > 0)
    {
      ReportEpoch((done * options.BatchSize) / samplesPerEpoch,
                  done,
                  epoch,
                  stepsPerSecond,
                  previousSeconds + seconds,
                  network,
                  validation,
                  options,
                  device,
                  jsonLog,
                  log);
      epoch = EpochLosses();
    }
    const bool outOfTime = options.TimeLimitSeconds > 0.0 && seconds >= options.TimeLimitSeconds;
    if (!options.CheckpointFile.empty() &&
        ((options.CheckpointInterval > 0 && done % options.CheckpointInterval == 0) || outOfTime))
    {
      SaveCheckpoint(options.CheckpointFile, network, optimizer, weightAverage, done, previousSeconds + seconds);
    }
    if (outOfTime && done < options.NumberOfSteps)
    {
      log << "[" << role << "] time limit reached at step " << done
          << (options.CheckpointFile.empty() ? "" : "; run again to resume from " + options.CheckpointFile)
          << std::endl;
      return nullptr;
    }
  }
  if (!weightAverage.empty())
  {
    torch::NoGradGuard noGrad;
    auto               parameters = network->parameters();
    for (std::size_t index = 0; index < weightAverage.size(); ++index)
    {
      parameters[index].copy_(weightAverage[index]);
    }
    log << "[" << role << "] weights averaged over the last " << options.WeightAveragingSteps << " steps"
        << (options.BatchNormRecalibrationBatches > 0 || options.NetworkArchitecture.Normalization != "batch"
              ? ""
              : "; their batch-norm statistics are those of the last step's weights (see --bn-recalibration)")
        << std::endl;
  }
  if (options.BatchNormRecalibrationBatches > 0)
  {
    log << "[" << role << "] re-estimating batch-norm statistics over " << options.BatchNormRecalibrationBatches
        << " batches" << std::endl;
    RecalibrateBatchNorm(network, batches, options.NumberOfSteps, options.BatchNormRecalibrationBatches, device);
  }
  const double totalSeconds = previousSeconds + std::chrono::duration<double>(Clock::now() - start).count();
  network->eval();
  network->to(implementation.Device);

  RecordTrainingMetadata(*model,
                         cases.size(),
                         static_cast<std::size_t>(std::count_if(cases.begin(), cases.end(), IsLabelMapCase)),
                         options,
                         teacher,
                         initialChecksum,
                         totalSeconds,
                         lastLoss);
  return model;
}
namespace
{
/** Band points of painted heads: features and labels, one point after another. */
struct BoundaryPoints
{
  std::vector<float>   Features;
  std::vector<float>   Labels;
  std::vector<uint8_t> CoarseLabels; // the coarse result's decision (probability >= 0.5)

  std::size_t
  size() const
  {
    return Labels.size();
  }
};

/** Paints heads of the label map \a fileName (\a contrasts[i] with seed
 * \a seeds[i]), runs each through \a student as inference does, and appends
 * up to \a pointsPerHead band points of each (all of them for 0) to
 * \a points. Returns a JSON object per head for the log. */
std::vector<std::string>
CollectBoundaryPoints(const std::string & fileName, const std::vector<std::string> & contrasts,
                      const std::vector<uint64_t> & seeds, double maximumSliceThicknessFactor,
                      const KDBrainExtractionTorchModel & student, double fineSpacing, unsigned int pointsPerHead,
                      BoundaryPoints & points)
{
  using WholeHeadLabels = KDBrainExtractionWholeHeadLabels;
  using Refinement = KDBrainExtractionBoundaryRefinement;
  const auto               labels = ReadVolume<LabelImageType>(fileName);
  const auto               mask = WholeHeadLabels::MakeBrainMask(labels, fileName);
  const auto               classes = WholeHeadLabels::MakeTissueClasses(labels, mask);
  std::vector<std::string> report;
  for (std::size_t head = 0; head < contrasts.size(); ++head)
  {
    auto synthesis = HeadContrastSynthesisImageFilter<TissueClassImageType, ImageType>::New();
    synthesis->SetInput(classes);
    synthesis->SetContrast(ParseContrastFamily(contrasts[head]));
    synthesis->SetSeed(seeds[head]);
    synthesis->SetMaximumSliceThicknessFactor(maximumSliceThicknessFactor);
    synthesis->Update();
    const ImageType * image = synthesis->GetOutput();
    // The coarse probability as inference computes it, on the working grid.
    KDBrainExtractionPreprocessing::IntensityWindow window;
    const auto coarse = KDBrainExtractionPreprocessing::PrepareWorkingVolume(image, student.GetContract(), window);
    const auto size = coarse->GetLargestPossibleRegion().GetSize();
    student.Predict(coarse->GetBufferPointer(), { size[0], size[1], size[2] }, coarse->GetBufferPointer());
    const auto volumes = Refinement::PrepareFineVolumes(image, window, coarse, fineSpacing);
    const auto fineMask = KDBrainExtractionPreprocessing::ResampleMaskToGrid(mask, volumes.Intensity);

    std::vector<std::size_t> chosen = volumes.BandOffsets;
    std::mt19937_64          generator(seeds[head]);
    if (pointsPerHead > 0 && chosen.size() > pointsPerHead)
    {
      // A partial Fisher-Yates shuffle: the first pointsPerHead, uniformly.
      for (std::size_t i = 0; i < pointsPerHead; ++i)
      {
        std::uniform_int_distribution<std::size_t> pick(i, chosen.size() - 1);
        std::swap(chosen[i], chosen[pick(generator)]);
      }
      chosen.resize(pointsPerHead);
    }
    const std::size_t first = points.size();
    points.Features.resize((first + chosen.size()) * Refinement::NumberOfFeatures);
    Refinement::GatherFeatures(
      volumes, chosen.data(), chosen.size(), points.Features.data() + first * Refinement::NumberOfFeatures);
    std::size_t coarseErrors = 0;
    for (const auto offset : chosen)
    {
      const bool inside = fineMask->GetBufferPointer()[offset] != 0;
      const bool coarseInside = volumes.CoarseProbability->GetBufferPointer()[offset] >= 0.5f;
      points.Labels.push_back(inside ? 1.0f : 0.0f);
      points.CoarseLabels.push_back(coarseInside ? 1 : 0);
      coarseErrors += inside != coarseInside;
    }
    std::ostringstream line;
    line << "{\"labels\": \"" << itksys::SystemTools::GetFilenameName(fileName) << "\", \"contrast\": \""
         << contrasts[head] << "\", \"seed\": " << seeds[head] << ", \"band_points\": " << volumes.BandOffsets.size()
         << ", \"points\": " << chosen.size()
         << ", \"coarse_error_rate\": " << (chosen.empty() ? 0.0 : double(coarseErrors) / chosen.size()) << "}";
    report.push_back(line.str());
  }
  return report;
}

/** Error rates of the coarse decision and of \a network on \a points. */
std::pair<double, double>
BandErrorRates(BoundaryRefinementNetwork & network, const BoundaryPoints & points, const torch::Device & device)
{
  if (points.size() == 0)
  {
    return { 0.0, 0.0 };
  }
  torch::NoGradGuard noGrad;
  network->eval();
  const auto    count = static_cast<int64_t>(points.size());
  torch::Tensor features =
    torch::from_blob(const_cast<float *>(points.Features.data()),
                     { count, static_cast<int64_t>(KDBrainExtractionBoundaryRefinement::NumberOfFeatures) },
                     torch::kFloat32);
  const torch::Tensor labels = torch::from_blob(const_cast<float *>(points.Labels.data()), { count }, torch::kFloat32);
  const torch::Tensor coarse =
    torch::from_blob(const_cast<uint8_t *>(points.CoarseLabels.data()), { count }, torch::kUInt8).to(torch::kFloat32);
  const torch::Tensor refined = (network->forward(features.to(device)).to(torch::kCPU) >= 0).to(torch::kFloat32);
  network->train();
  return { (coarse != labels).to(torch::kFloat64).mean().item<double>(),
           (refined != labels).to(torch::kFloat64).mean().item<double>() };
}
} // namespace

KDBrainExtractionTorchModel::Pointer
KDBrainExtractionTrainer::TrainBoundaryRefiner(const std::vector<Case> & labelMaps, const RefinerOptions & options,
                                               std::ostream & log)
{
  using RoleEnum = KDBrainExtractionTorchModel::RoleEnum;
  if (labelMaps.empty())
  {
    itkGenericExceptionMacro(<< "no label maps to train the refiner on");
  }
  for (const auto & list : { labelMaps, options.ValidationCases })
  {
    for (const auto & item : list)
    {
      if (!IsLabelMapCase(item))
      {
        itkGenericExceptionMacro(<< item.Subject << ": the refiner trains on whole-head label maps only "
                                 << "(a case with labels and no image)");
      }
    }
  }
  if (options.CoarseModelFile.empty())
  {
    itkGenericExceptionMacro(<< "the refiner needs the student whose boundary it refines (a coarse model file)");
  }
  if (options.BatchSize == 0 || options.NumberOfSteps == 0 || options.HeadsPerLabelMap == 0)
  {
    itkGenericExceptionMacro(<< "the batch size, the number of steps and the heads per label map must be positive");
  }
  if (!(options.FineSpacing >= 0.25 && options.FineSpacing <= 2.0))
  {
    itkGenericExceptionMacro(<< "the fine spacing must be in [0.25, 2] mm, got " << options.FineSpacing);
  }
  if (options.NetworkArchitecture.Depth < 1 || options.NetworkArchitecture.Depth > 8 ||
      options.NetworkArchitecture.BaseWidth < 1 || options.NetworkArchitecture.BaseWidth > 1024)
  {
    itkGenericExceptionMacro(<< "a refiner has 1-8 hidden layers of 1-1024 units");
  }
  const std::vector<std::string> & contrasts = options.SyntheticContrasts;
  if (contrasts.empty())
  {
    itkGenericExceptionMacro(<< "the refiner's heads need at least one contrast family");
  }
  for (const auto & name : contrasts)
  {
    ParseContrastFamily(name); // throws for an unknown name, before any work
  }
  KDBrainExtractionTorchModel::SetNumberOfThreads(options.NumberOfThreads);
  const torch::Device device = KDBrainExtractionParseDevice(options.Device);
  auto                student = KDBrainExtractionTorchModel::New();
  student->Load(options.CoarseModelFile);
  if (student->GetRole() != RoleEnum::Student)
  {
    itkGenericExceptionMacro(<< options.CoarseModelFile << ": a "
                             << KDBrainExtractionTorchModel::RoleToString(student->GetRole())
                             << " model; the refiner refines a student's boundary");
  }
  student->SetDevice(options.Device);
  std::ofstream jsonLog;
  if (!options.LogFile.empty())
  {
    jsonLog.open(options.LogFile, std::ios::trunc);
    if (!jsonLog)
    {
      itkGenericExceptionMacro(<< options.LogFile << ": cannot write the training log");
    }
  }
  const auto start = Clock::now();
  const auto elapsed = [&start]() { return std::chrono::duration<double>(Clock::now() - start).count(); };

  // Heads: contrast and seed of head h of map m depend on the seed, m and h only.
  BoundaryPoints training;
  for (std::size_t map = 0; map < labelMaps.size(); ++map)
  {
    std::vector<std::string> headContrasts;
    std::vector<uint64_t>    seeds;
    for (unsigned int head = 0; head < options.HeadsPerLabelMap; ++head)
    {
      auto generator = SampleGenerator(options.Seed, map * 1000 + head, 7);
      headContrasts.push_back(
        contrasts[std::uniform_int_distribution<std::size_t>(0, contrasts.size() - 1)(generator)]);
      seeds.push_back(generator());
    }
    for (const auto & line : CollectBoundaryPoints(labelMaps[map].Labels,
                                                   headContrasts,
                                                   seeds,
                                                   options.MaximumSliceThicknessFactor,
                                                   *student,
                                                   options.FineSpacing,
                                                   options.PointsPerHead,
                                                   training))
    {
      if (jsonLog)
      {
        jsonLog << line << std::endl;
      }
    }
    log << "[refiner] painted " << (map + 1) * options.HeadsPerLabelMap << " heads of " << labelMaps.size()
        << " label maps, " << training.size() << " band points, " << FormatDuration(elapsed()) << std::endl;
  }
  BoundaryPoints validation;
  for (std::size_t map = 0; map < options.ValidationCases.size(); ++map)
  {
    // Every family once, with fixed seeds: the same heads for every refiner.
    std::vector<uint64_t> seeds;
    for (std::size_t head = 0; head < contrasts.size(); ++head)
    {
      seeds.push_back(1000003 * (map + 1) + head);
    }
    CollectBoundaryPoints(options.ValidationCases[map].Labels,
                          contrasts,
                          seeds,
                          options.MaximumSliceThicknessFactor,
                          *student,
                          options.FineSpacing,
                          options.PointsPerHead,
                          validation);
  }
  if (training.size() == 0)
  {
    itkGenericExceptionMacro(<< "the painted heads gave no band points to train on");
  }

  auto model = KDBrainExtractionTorchModel::New();
  auto contract = student->GetContract();
  contract.WorkingSpacing = { { options.FineSpacing, options.FineSpacing, options.FineSpacing } };
  model->Initialize(RoleEnum::Refiner, options.NetworkArchitecture, contract, options.Seed);
  auto & network = model->GetImplementation().Refiner;
  network->to(device);
  network->train();
  torch::optim::Adam  optimizer(network->parameters(),
                               torch::optim::AdamOptions(options.LearningRate).weight_decay(options.WeightDecay));
  const auto          numberOfFeatures = static_cast<int64_t>(KDBrainExtractionBoundaryRefinement::NumberOfFeatures);
  const torch::Tensor features = torch::from_blob(
    training.Features.data(), { static_cast<int64_t>(training.size()), numberOfFeatures }, torch::kFloat32);
  const torch::Tensor labels =
    torch::from_blob(training.Labels.data(), { static_cast<int64_t>(training.size()) }, torch::kFloat32);
  torch::Generator generator = at::detail::createCPUGenerator(options.Seed);
  double           lossSum = 0.0;
  double           lastLoss = 0.0;
  for (unsigned int step = 1; step <= options.NumberOfSteps; ++step)
  {
    const torch::Tensor batch = torch::randint(
      static_cast<int64_t>(training.size()), { static_cast<int64_t>(options.BatchSize) }, generator, torch::kLong);
    optimizer.zero_grad();
    const torch::Tensor loss = torch::binary_cross_entropy_with_logits(
      network->forward(features.index_select(0, batch).to(device)), labels.index_select(0, batch).to(device));
    loss.backward();
    optimizer.step();
    lastLoss = loss.item<double>();
    lossSum += lastLoss;
    if (step % 500 == 0 || step == options.NumberOfSteps)
    {
      const unsigned int steps = step % 500 == 0 ? 500 : step % 500;
      const auto         rates = BandErrorRates(network, validation, device);
      log << "[refiner] step " << step << "/" << options.NumberOfSteps << " loss " << lossSum / steps;
      if (validation.size() > 0)
      {
        log << ", validation band error rate: coarse " << rates.first << ", refined " << rates.second;
      }
      log << ", " << FormatDuration(elapsed()) << std::endl;
      if (jsonLog)
      {
        jsonLog << "{\"step\": " << step << ", \"loss\": " << lossSum / steps << ", \"seconds\": " << elapsed();
        if (validation.size() > 0)
        {
          jsonLog << ", \"validation_coarse_error_rate\": " << rates.first
                  << ", \"validation_refined_error_rate\": " << rates.second;
        }
        jsonLog << "}" << std::endl;
      }
      lossSum = 0.0;
    }
  }
  network->eval();
  network->to(model->GetImplementation().Device);

  std::ostringstream contrastNames;
  for (const auto & name : options.SyntheticContrasts)
  {
    contrastNames << (contrastNames.tellp() > 0 ? " " : "") << name;
  }
  model->SetMetadata("training.coarse_model", student->GetChecksum());
  model->SetMetadata("training.label_maps", std::to_string(labelMaps.size()));
  model->SetMetadata("training.heads_per_label_map", std::to_string(options.HeadsPerLabelMap));
  model->SetMetadata("training.points", std::to_string(training.size()));
  model->SetMetadata("training.contrasts", contrastNames.str());
  model->SetMetadata("training.max_slice_thickness", std::to_string(options.MaximumSliceThicknessFactor));
  model->SetMetadata("training.steps", std::to_string(options.NumberOfSteps));
  model->SetMetadata("training.batch_size", std::to_string(options.BatchSize));
  model->SetMetadata("training.learning_rate", std::to_string(options.LearningRate));
  model->SetMetadata("training.weight_decay", std::to_string(options.WeightDecay));
  model->SetMetadata("training.seed", std::to_string(options.Seed));
  model->SetMetadata("training.seconds", std::to_string(static_cast<long>(elapsed())));
  model->SetMetadata("training.final_loss", std::to_string(lastLoss));
  return model;
}
} // end namespace itk
