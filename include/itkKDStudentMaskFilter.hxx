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
#ifndef itkKDStudentMaskFilter_hxx
#define itkKDStudentMaskFilter_hxx

#include "itkKDStudentMaskFilter.h"

#include "itkKDBrainExtractionBoundaryRefinement.h"

#include <algorithm>

namespace itk
{
template <typename TInputImage, typename TMaskImage>
KDStudentMaskFilter<TInputImage, TMaskImage>::KDStudentMaskFilter()
  : Superclass(Superclass::RoleEnum::Student)
{
  this->SetNumberOfRequiredOutputs(3);
  this->SetNthOutput(1, this->MakeOutput(1));
  this->SetNthOutput(2, this->MakeOutput(2));
}

template <typename TInputImage, typename TMaskImage>
DataObject::Pointer
KDStudentMaskFilter<TInputImage, TMaskImage>::MakeOutput(DataObjectPointerArraySizeType index)
{
  switch (index)
  {
    case 1:
      return ProbabilityImageType::New().GetPointer();
    case 2:
      return InputImageType::New().GetPointer();
    default:
      return MaskImageType::New().GetPointer();
  }
}

template <typename TInputImage, typename TMaskImage>
auto
KDStudentMaskFilter<TInputImage, TMaskImage>::GetMaskOutput() -> MaskImageType *
{
  return dynamic_cast<MaskImageType *>(this->ProcessObject::GetOutput(0));
}

template <typename TInputImage, typename TMaskImage>
auto
KDStudentMaskFilter<TInputImage, TMaskImage>::GetProbabilityOutput() -> ProbabilityImageType *
{
  return dynamic_cast<ProbabilityImageType *>(this->ProcessObject::GetOutput(1));
}

template <typename TInputImage, typename TMaskImage>
auto
KDStudentMaskFilter<TInputImage, TMaskImage>::GetMaskedOutput() -> InputImageType *
{
  return dynamic_cast<InputImageType *>(this->ProcessObject::GetOutput(2));
}

template <typename TInputImage, typename TMaskImage>
ModifiedTimeType
KDStudentMaskFilter<TInputImage, TMaskImage>::GetMTime() const
{
  ModifiedTimeType time = Superclass::GetMTime();
  if (m_RefinerModel.IsNotNull())
  {
    time = std::max(time, m_RefinerModel->GetMTime());
  }
  return time;
}

template <typename TInputImage, typename TMaskImage>
auto
KDStudentMaskFilter<TInputImage, TMaskImage>::ResolveRefiner() -> const ModelType *
{
  const ModelType * student = this->GetResolvedModel();
  if (!m_BoundaryRefinement ||
      !KDBrainExtractionBoundaryRefinement::IsFinerThanWorkingGrid(this->GetInput(), student->GetContract()))
  {
    return nullptr;
  }
  ModelType * refiner = m_RefinerModel.GetPointer();
  if (refiner == nullptr)
  {
    const std::string fileName = m_RefinerModelFileName.empty()
                                   ? ModelType::FindDefaultModelFile(ModelType::RoleEnum::Refiner)
                                   : m_RefinerModelFileName;
    if (fileName.empty())
    {
      return nullptr;
    }
    if (m_LoadedRefinerModel.IsNull() || m_LoadedRefinerModel->GetFileName() != fileName)
    {
      auto loaded = ModelType::New();
      loaded->Load(fileName);
      m_LoadedRefinerModel = loaded;
    }
    refiner = m_LoadedRefinerModel.GetPointer();
  }
  if (refiner->GetRole() != ModelType::RoleEnum::Refiner)
  {
    itkExceptionMacro(<< (refiner->GetFileName().empty() ? std::string("the refiner model") : refiner->GetFileName())
                      << " is a " << ModelType::RoleToString(refiner->GetRole())
                      << " model; the fine stage needs a refiner model");
  }
  refiner->SetDevice(this->GetDevice());
  return refiner;
}

template <typename TInputImage, typename TMaskImage>
void
KDStudentMaskFilter<TInputImage, TMaskImage>::GenerateData()
{
  // The network, resampling included, is most of the work.
  constexpr double networkShare = 0.9;
  this->UpdateProgress(0.0f);
  const InputImageType * input = this->GetInput();
  const ModelType *      model = this->GetResolvedModel();
  const ModelType *      refiner = this->ResolveRefiner();
  NetworkRun             run;
  run.Input = input;
  run.InputTime = input->GetMTime();
  run.Model = model;
  run.ModelTime = model->GetMTime();
  run.Refiner = refiner;
  run.RefinerTime = refiner != nullptr ? refiner->GetMTime() : 0;
  run.Mirroring = this->GetTestTimeMirroring();
  run.Device = this->GetDevice();
  if (m_LastProbability.IsNull() || !(run == m_LastNetworkRun))
  {
    m_LastProbability = nullptr; // freed before the network needs its memory
    IntensityWindow window;
    m_LastProbability = this->RunNetwork(window, networkShare, refiner);
    m_LastNetworkRun = run;
    m_BoundaryRefined = refiner != nullptr;
  }
  else
  {
    this->UpdateProgress(static_cast<float>(networkShare));
  }
  this->CheckAbort();

  const auto brain = KDBrainExtractionPreprocessing::MakeBrainMask(
    m_LastProbability, m_Threshold, m_KeepLargestComponent, m_FillHoles, m_MaskBorder);
  this->CheckAbort();

  // Allocated after the network, whose peak memory they would add to.
  this->AllocateOutputs();
  const auto             region = input->GetLargestPossibleRegion();
  MaskImageType *        mask = this->GetMaskOutput();
  ProbabilityImageType * probabilityOutput = this->GetProbabilityOutput();
  InputImageType *       masked = this->GetMaskedOutput();
  for (const ImageBase<3> * output : { static_cast<const ImageBase<3> *>(mask),
                                       static_cast<const ImageBase<3> *>(probabilityOutput),
                                       static_cast<const ImageBase<3> *>(masked) })
  {
    if (output->GetBufferedRegion() != region)
    {
      itkExceptionMacro(<< "every output covers the whole input (" << region << "), not "
                        << output->GetBufferedRegion());
    }
  }

  // All buffers cover the same largest possible region, in the same order.
  const std::size_t     numberOfVoxels = region.GetNumberOfPixels();
  const unsigned char * brainVoxels = brain->GetBufferPointer();
  const auto *          inputVoxels = input->GetBufferPointer();
  std::copy_n(m_LastProbability->GetBufferPointer(), numberOfVoxels, probabilityOutput->GetBufferPointer());
  auto * maskVoxels = mask->GetBufferPointer();
  auto * maskedVoxels = masked->GetBufferPointer();
  for (std::size_t i = 0; i < numberOfVoxels; ++i)
  {
    const bool inside = brainVoxels[i] != 0;
    maskVoxels[i] = static_cast<typename MaskImageType::PixelType>(inside ? 1 : 0);
    maskedVoxels[i] = inside ? inputVoxels[i] : NumericTraits<typename InputImageType::PixelType>::ZeroValue();
  }
  this->UpdateProgress(1.0f);
}

template <typename TInputImage, typename TMaskImage>
void
KDStudentMaskFilter<TInputImage, TMaskImage>::PrintSelf(std::ostream & os, Indent indent) const
{
  Superclass::PrintSelf(os, indent);
  os << indent << "Threshold: " << m_Threshold << std::endl;
  os << indent << "KeepLargestComponent: " << (m_KeepLargestComponent ? "On" : "Off") << std::endl;
  os << indent << "FillHoles: " << (m_FillHoles ? "On" : "Off") << std::endl;
  os << indent << "MaskBorder: " << m_MaskBorder << " mm" << std::endl;
  os << indent << "BoundaryRefinement: " << (m_BoundaryRefinement ? "On" : "Off") << std::endl;
  os << indent << "RefinerModelFileName: " << m_RefinerModelFileName << std::endl;
  os << indent << "RefinerModel: " << m_RefinerModel.GetPointer() << std::endl;
  os << indent << "LoadedRefinerModel: " << m_LoadedRefinerModel.GetPointer() << std::endl;
}
} // end namespace itk

#endif // itkKDStudentMaskFilter_hxx
