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
#ifndef itkKDBrainExtractionImageFilterBase_h
#define itkKDBrainExtractionImageFilterBase_h

#include "itkImageToImageFilter.h"
#include "itkKDBrainExtractionTorchModel.h"

namespace itk
{
/** \class KDBrainExtractionImageFilterBase
 * \brief What the teacher and student filters share: the model (given, read
 * from a file, or the shipped default), the device, and running the network
 * over the whole input volume with progress and abort.
 *
 * The network sees the whole head, so the input's requested region is always
 * its largest possible region, and so is the output's. GenerateData is not
 * multi-threaded by ITK: LibTorch runs its own thread pool.
 *
 * \ingroup KDBrainExtraction
 */
template <typename TInputImage, typename TOutputImage>
class ITK_TEMPLATE_EXPORT KDBrainExtractionImageFilterBase : public ImageToImageFilter<TInputImage, TOutputImage>
{
public:
  ITK_DISALLOW_COPY_AND_MOVE(KDBrainExtractionImageFilterBase);

  using Self = KDBrainExtractionImageFilterBase;
  using Superclass = ImageToImageFilter<TInputImage, TOutputImage>;
  using Pointer = SmartPointer<Self>;
  using ConstPointer = SmartPointer<const Self>;

  itkTypeMacro(KDBrainExtractionImageFilterBase, ImageToImageFilter);

  static constexpr unsigned int ImageDimension = TInputImage::ImageDimension;
  static_assert(ImageDimension == 3, "brain extraction works on 3D images");
  static_assert(TOutputImage::ImageDimension == 3, "brain extraction writes 3D images");

  using InputImageType = TInputImage;
  using OutputImageType = TOutputImage;
  using ModelType = KDBrainExtractionTorchModel;
  using RoleEnum = ModelType::RoleEnum;
  using FloatImageType = KDBrainExtractionPreprocessing::ImageType;
  using IntensityWindow = KDBrainExtractionPreprocessing::IntensityWindow;

  /** A model file to read; empty: the shipped default for this filter's role.
   * Ignored when a model object is set. */
  itkSetStringMacro(ModelFileName);
  itkGetStringMacro(ModelFileName);

  /** A model object, to share one set of weights between filters. */
  itkSetObjectMacro(Model, ModelType);
  itkGetModifiableObjectMacro(Model, ModelType);

  /** "auto" (default: CUDA when present, else CPU), "cpu", "cuda" or "cuda:N". */
  itkSetStringMacro(Device);
  itkGetStringMacro(Device);

  /** Threads of LibTorch's pool while GenerateData runs (LibTorch's pool is
   * process-wide: the count before is restored after); 0 leaves it as it is. */
  itkSetMacro(NumberOfTorchThreads, unsigned int);
  itkGetConstMacro(NumberOfTorchThreads, unsigned int);

  /** Test-time augmentation: also run the network on the input mirrored
   * left-right and average the two outputs (twice the network's time). Off by
   * default. */
  itkSetMacro(TestTimeMirroring, bool);
  itkGetConstMacro(TestTimeMirroring, bool);
  itkBooleanMacro(TestTimeMirroring);

  /** The model that GenerateData uses: the one set, or the one read. Throws if
   * none can be read or its role does not fit this filter. */
  ModelType *
  GetResolvedModel();

  /** Wall-clock seconds of the stages of the filter's mini-pipeline, at its
   * last run of the network (GenerateData re-uses the network's output when
   * only its post-processing changed). */
  struct StageTimes
  {
    double Preprocessing{ 0.0 }; // verify, resample to the working grid, normalise
    double Network{ 0.0 };       // crop to the head, network, sigmoid
    double Refinement{ 0.0 };    // fine stage: fine grid, band features, refiner (0 without)
    double MapBack{ 0.0 };       // resample the output onto the input's grid
  };
  const StageTimes &
  GetStageTimes() const
  {
    return m_StageTimes;
  }

  /** Includes the model's: new weights (Initialize, Load) make the output
   * out of date, as a new transform does for ResampleImageFilter. */
  ModifiedTimeType
  GetMTime() const override;

protected:
  explicit KDBrainExtractionImageFilterBase(RoleEnum role);
  ~KDBrainExtractionImageFilterBase() override = default;

  void
  PrintSelf(std::ostream & os, Indent indent) const override;

  void
  GenerateInputRequestedRegion() override;
  void
  EnlargeOutputRequestedRegion(DataObject * output) override;
  void
  VerifyPreconditions() ITKv5_CONST override;

  /** The network's output on the input grid (probability for a student, the
   * normalised brain image for a teacher), reporting progress up to
   * \a progressShare of the filter's work. The filter's own mini-pipeline:
   * the input verified, resampled to the model's working grid and normalised
   * (\a window receives the intensity map), the model run on that volume,
   * with a \a refiner the fine stage (KDBrainExtractionBoundaryRefinement),
   * and the output resampled linearly back onto the input's grid. */
  FloatImageType::Pointer
  RunNetwork(IntensityWindow & window, double progressShare, const ModelType * refiner = nullptr);

  /** The input as float, without re-executing the upstream pipeline. */
  typename FloatImageType::ConstPointer
  GetInputAsFloat();

  /** Throws ProcessAborted if the user asked to abort. */
  void
  CheckAbort();

private:
  RoleEnum                    m_Role;
  std::string                 m_ModelFileName;
  typename ModelType::Pointer m_Model;
  typename ModelType::Pointer m_LoadedModel;
  std::string                 m_Device{ "auto" };
  unsigned int                m_NumberOfTorchThreads{ 0 };
  bool                        m_TestTimeMirroring{ false };
  StageTimes                  m_StageTimes;
};
} // end namespace itk

#ifndef ITK_MANUAL_INSTANTIATION
#  include "itkKDBrainExtractionImageFilterBase.hxx"
#endif

#endif // itkKDBrainExtractionImageFilterBase_h
