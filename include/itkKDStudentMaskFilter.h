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
#ifndef itkKDStudentMaskFilter_h
#define itkKDStudentMaskFilter_h

#include "itkKDBrainExtractionImageFilterBase.h"

namespace itk
{
/** \class KDStudentMaskFilter
 * \brief Brain mask of a 3D head MRI (T1w, T2w, PDw) by the distilled student UNet++.
 *
 * The input, of any scalar pixel type, orientation and spacing, is mapped to
 * the model's working grid in physical space and normalised
 * (KDBrainExtractionPreprocessing); the network's brain probability is
 * resampled linearly back onto the input grid and only then thresholded, so
 * that the mask boundary is not that of the working grid. The largest
 * connected component is kept and its holes are filled.
 *
 * For inputs finer than the working grid (1 mm, or 0.5 mm in plane), a second,
 * fine stage re-decides the voxels within a few millimetres of the coarse
 * boundary at the refiner model's spacing (1 mm), from the input at that
 * resolution and the coarse probability (KDBrainExtractionBoundaryRefinement):
 * off by default (BoundaryRefinement): the shipped refiner gains on painted
 * heads and loses on real scans (docs/fine-stage.md).
 *
 * Outputs, all on the input's grid (origin, spacing and direction preserved):
 * - 0: the binary brain mask (0/1), GetMaskOutput();
 * - 1: the brain probability map (float), GetProbabilityOutput();
 * - 2: the input with everything outside the mask set to 0, GetMaskedOutput().
 *
 * LibTorch runs on CUDA when present (see SetDevice), else on the CPU.
 *
 * \ingroup KDBrainExtraction
 */
template <typename TInputImage, typename TMaskImage = Image<unsigned char, TInputImage::ImageDimension>>
class ITK_TEMPLATE_EXPORT KDStudentMaskFilter : public KDBrainExtractionImageFilterBase<TInputImage, TMaskImage>
{
public:
  ITK_DISALLOW_COPY_AND_MOVE(KDStudentMaskFilter);

  using Self = KDStudentMaskFilter;
  using Superclass = KDBrainExtractionImageFilterBase<TInputImage, TMaskImage>;
  using Pointer = SmartPointer<Self>;
  using ConstPointer = SmartPointer<const Self>;

  itkNewMacro(Self);
  itkTypeMacro(KDStudentMaskFilter, KDBrainExtractionImageFilterBase);

  using InputImageType = TInputImage;
  using MaskImageType = TMaskImage;
  using ProbabilityImageType = typename Superclass::FloatImageType;
  using typename Superclass::FloatImageType;
  using typename Superclass::IntensityWindow;
  using typename Superclass::ModelType;

  /** Probability at or above which a voxel is brain. */
  itkSetClampMacro(Threshold, double, 0.0, 1.0);
  itkGetConstMacro(Threshold, double);

  /** Keep only the largest connected component (on by default). */
  itkSetMacro(KeepLargestComponent, bool);
  itkGetConstMacro(KeepLargestComponent, bool);
  itkBooleanMacro(KeepLargestComponent);

  /** Fill holes of the mask (on by default). */
  itkSetMacro(FillHoles, bool);
  itkGetConstMacro(FillHoles, bool);
  itkBooleanMacro(FillHoles);

  /** Moves the mask's border outward (positive) or inward (negative) by this
   * many millimetres, like SynthStrip's --border: a dilation or erosion by a
   * ball in physical units. The mask and the masked output follow it; the
   * probability does not. Default 0, the border the network learned. */
  itkSetMacro(MaskBorder, double);
  itkGetConstMacro(MaskBorder, double);

  /** The fine stage, for inputs finer than the working grid (off by default;
   * it needs a refiner: the one set, else the file named, else the shipped
   * default; without any, the coarse result stands). */
  itkSetMacro(BoundaryRefinement, bool);
  itkGetConstMacro(BoundaryRefinement, bool);
  itkBooleanMacro(BoundaryRefinement);

  /** A refiner model file; empty: the shipped default. Ignored when a
   * refiner model object is set. */
  itkSetStringMacro(RefinerModelFileName);
  itkGetStringMacro(RefinerModelFileName);

  /** A refiner model object, to share one between filters. */
  itkSetObjectMacro(RefinerModel, ModelType);
  itkGetModifiableObjectMacro(RefinerModel, ModelType);

  /** Whether the last GenerateData ran the fine stage. */
  itkGetConstMacro(BoundaryRefined, bool);

  /** Includes the refiner model's (the student's is the base class's). */
  ModifiedTimeType
  GetMTime() const override;

  MaskImageType *
  GetMaskOutput();
  ProbabilityImageType *
  GetProbabilityOutput();
  InputImageType *
  GetMaskedOutput();

protected:
  KDStudentMaskFilter();
  ~KDStudentMaskFilter() override = default;

  void
  PrintSelf(std::ostream & os, Indent indent) const override;

  using DataObjectPointerArraySizeType = ProcessObject::DataObjectPointerArraySizeType;
  using Superclass::MakeOutput;
  DataObject::Pointer
  MakeOutput(DataObjectPointerArraySizeType index) override;

  void
  GenerateData() override;

  /** The refiner for this input, or nullptr when the fine stage is off, the
   * input is not finer than the working grid, or no refiner is to be had. */
  const ModelType *
  ResolveRefiner();

private:
  double m_Threshold{ 0.5 };
  bool   m_KeepLargestComponent{ true };
  bool   m_FillHoles{ true };
  double m_MaskBorder{ 0.0 };
  bool   m_BoundaryRefinement{ false };
  bool   m_BoundaryRefined{ false };

  std::string                 m_RefinerModelFileName;
  typename ModelType::Pointer m_RefinerModel;
  typename ModelType::Pointer m_LoadedRefinerModel;

  /** What the network's probability depends on. While it stays the same, a
   * new Threshold, MaskBorder, KeepLargestComponent or FillHoles reuses the
   * last probability instead of running the network again. */
  struct NetworkRun
  {
    const void *     Input{ nullptr };
    ModifiedTimeType InputTime{ 0 };
    const void *     Model{ nullptr };
    ModifiedTimeType ModelTime{ 0 };
    const void *     Refiner{ nullptr };
    ModifiedTimeType RefinerTime{ 0 };
    bool             Mirroring{ false };
    std::string      Device;

    bool
    operator==(const NetworkRun & other) const
    {
      return Input == other.Input && InputTime == other.InputTime && Model == other.Model &&
             ModelTime == other.ModelTime && Refiner == other.Refiner && RefinerTime == other.RefinerTime &&
             Mirroring == other.Mirroring && Device == other.Device;
    }
  };
  NetworkRun m_LastNetworkRun;
  /** The last probability, private: the probability output is a copy, which
   * a downstream in-place filter may overwrite. */
  typename FloatImageType::Pointer m_LastProbability;
};
} // end namespace itk

#ifndef ITK_MANUAL_INSTANTIATION
#  include "itkKDStudentMaskFilter.hxx"
#endif

#endif // itkKDStudentMaskFilter_h
