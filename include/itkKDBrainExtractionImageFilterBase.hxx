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
#ifndef itkKDBrainExtractionImageFilterBase_hxx
#define itkKDBrainExtractionImageFilterBase_hxx

#include "itkKDBrainExtractionImageFilterBase.h"

#include "itkCastImageFilter.h"
#include "itkKDBrainExtractionBoundaryRefinement.h"

#include <algorithm>
#include <chrono>
#include <type_traits>

namespace itk
{
template <typename TInputImage, typename TOutputImage>
KDBrainExtractionImageFilterBase<TInputImage, TOutputImage>::KDBrainExtractionImageFilterBase(RoleEnum role)
  : m_Role(role)
{}

template <typename TInputImage, typename TOutputImage>
void
KDBrainExtractionImageFilterBase<TInputImage, TOutputImage>::GenerateInputRequestedRegion()
{
  Superclass::GenerateInputRequestedRegion();
  if (auto * input = const_cast<InputImageType *>(this->GetInput()))
  {
    input->SetRequestedRegionToLargestPossibleRegion();
  }
}

template <typename TInputImage, typename TOutputImage>
void
KDBrainExtractionImageFilterBase<TInputImage, TOutputImage>::EnlargeOutputRequestedRegion(DataObject * output)
{
  Superclass::EnlargeOutputRequestedRegion(output);
  output->SetRequestedRegionToLargestPossibleRegion();
}

template <typename TInputImage, typename TOutputImage>
void
KDBrainExtractionImageFilterBase<TInputImage, TOutputImage>::VerifyPreconditions() ITKv5_CONST
{
  Superclass::VerifyPreconditions();
  if (m_Model.IsNull() && m_ModelFileName.empty() && ModelType::FindDefaultModelFile(m_Role).empty())
  {
    itkExceptionMacro(<< "no model: set Model or ModelFileName (no default " << ModelType::RoleToString(m_Role)
                      << " model was found; set KDBET_MODEL_DIR)");
  }
}

template <typename TInputImage, typename TOutputImage>
ModifiedTimeType
KDBrainExtractionImageFilterBase<TInputImage, TOutputImage>::GetMTime() const
{
  ModifiedTimeType time = Superclass::GetMTime();
  if (m_Model.IsNotNull())
  {
    time = std::max(time, m_Model->GetMTime());
  }
  return time;
}

template <typename TInputImage, typename TOutputImage>
auto
KDBrainExtractionImageFilterBase<TInputImage, TOutputImage>::GetResolvedModel() -> ModelType *
{
  ModelType * model = m_Model.GetPointer();
  if (model == nullptr)
  {
    const std::string fileName = m_ModelFileName.empty() ? ModelType::FindDefaultModelFile(m_Role) : m_ModelFileName;
    if (fileName.empty())
    {
      itkExceptionMacro(<< "no " << ModelType::RoleToString(m_Role)
                        << " model file was given and no default was found");
    }
    if (m_LoadedModel.IsNull() || m_LoadedModel->GetFileName() != fileName)
    {
      auto loaded = ModelType::New();
      loaded->Load(fileName);
      m_LoadedModel = loaded;
    }
    model = m_LoadedModel.GetPointer();
  }
  if (model->GetRole() != m_Role)
  {
    itkExceptionMacro(<< (model->GetFileName().empty() ? std::string("the model") : model->GetFileName()) << " is a "
                      << ModelType::RoleToString(model->GetRole()) << " model; " << this->GetNameOfClass()
                      << " needs a " << ModelType::RoleToString(m_Role) << " model");
  }
  return model;
}

template <typename TInputImage, typename TOutputImage>
void
KDBrainExtractionImageFilterBase<TInputImage, TOutputImage>::CheckAbort()
{
  if (this->GetAbortGenerateData())
  {
    ProcessAborted aborted(__FILE__, __LINE__);
    aborted.SetDescription("brain extraction aborted by the user");
    throw aborted;
  }
}

template <typename TInputImage, typename TOutputImage>
auto
KDBrainExtractionImageFilterBase<TInputImage, TOutputImage>::GetInputAsFloat() -> typename FloatImageType::ConstPointer
{
  if constexpr (std::is_same<InputImageType, FloatImageType>::value)
  {
    return this->GetInput();
  }
  else
  {
    // A mini-pipeline on a graft of the input, so that the upstream pipeline
    // is not re-executed.
    auto inputGraft = InputImageType::New();
    inputGraft->Graft(this->GetInput());
    auto cast = CastImageFilter<InputImageType, FloatImageType>::New();
    cast->SetInput(inputGraft);
    cast->Update();
    return cast->GetOutput();
  }
}

template <typename TInputImage, typename TOutputImage>
auto
KDBrainExtractionImageFilterBase<TInputImage, TOutputImage>::RunNetwork(IntensityWindow & window, double progressShare,
                                                                        const ModelType * refiner)
  -> FloatImageType::Pointer
{
  ModelType * model = this->GetResolvedModel();
  model->SetDevice(m_Device);
  // LibTorch's thread count is the process's: it is put back afterwards.
  struct ThreadCountRestorer
  {
    unsigned int Previous{ ModelType::GetNumberOfThreads() };
    ~ThreadCountRestorer() { ModelType::SetNumberOfThreads(Previous); }
  } restorer;
  ModelType::SetNumberOfThreads(m_NumberOfTorchThreads);
  this->CheckAbort();

  using Preprocessing = KDBrainExtractionPreprocessing;
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); };
  // Shares of the work, measured on a 2 mm head: the network dominates.
  constexpr double preprocessingShare = 0.05;
  constexpr double networkShare = 0.9;
  m_StageTimes = StageTimes();

  auto                                        start = Clock::now();
  const typename FloatImageType::ConstPointer input = this->GetInputAsFloat();
  Preprocessing::VerifyImage(input, "input image");
  FloatImageType::Pointer output = Preprocessing::PrepareWorkingVolume(input, model->GetContract(), window);
  m_StageTimes.Preprocessing = seconds(start);
  this->UpdateProgress(static_cast<float>(progressShare * preprocessingShare));
  this->CheckAbort();

  // In place: the network reads the working volume whole before it writes,
  // and nothing after it needs the volume (the fine stage reads the input).
  start = Clock::now();
  const auto size = output->GetLargestPossibleRegion().GetSize();
  model->Predict(
    output->GetBufferPointer(),
    { size[0], size[1], size[2] },
    output->GetBufferPointer(),
    [this, progressShare](double fraction) {
      this->UpdateProgress(static_cast<float>(progressShare * (preprocessingShare + networkShare * fraction)));
      return !this->GetAbortGenerateData();
    },
    m_TestTimeMirroring);
  m_StageTimes.Network = seconds(start);

  if (refiner != nullptr)
  {
    start = Clock::now();
    output = KDBrainExtractionBoundaryRefinement::Refine(input, window, output, *model, *refiner);
    m_StageTimes.Refinement = seconds(start);
    this->CheckAbort();
  }

  start = Clock::now();
  FloatImageType::Pointer result = Preprocessing::ResampleToReferenceGrid(output, input);
  m_StageTimes.MapBack = seconds(start);
  this->UpdateProgress(static_cast<float>(progressShare));
  return result;
}

template <typename TInputImage, typename TOutputImage>
void
KDBrainExtractionImageFilterBase<TInputImage, TOutputImage>::PrintSelf(std::ostream & os, Indent indent) const
{
  Superclass::PrintSelf(os, indent);
  os << indent << "Role: " << ModelType::RoleToString(m_Role) << std::endl;
  os << indent << "ModelFileName: " << m_ModelFileName << std::endl;
  os << indent << "Model: " << m_Model.GetPointer() << std::endl;
  os << indent << "LoadedModel: " << m_LoadedModel.GetPointer() << std::endl;
  os << indent << "Device: " << m_Device << std::endl;
  os << indent << "NumberOfTorchThreads: " << m_NumberOfTorchThreads << std::endl;
  os << indent << "TestTimeMirroring: " << (m_TestTimeMirroring ? "On" : "Off") << std::endl;
  os << indent << "StageTimes (s): preprocessing " << m_StageTimes.Preprocessing << ", network " << m_StageTimes.Network
     << ", refinement " << m_StageTimes.Refinement << ", map back " << m_StageTimes.MapBack << std::endl;
}
} // end namespace itk

#endif // itkKDBrainExtractionImageFilterBase_hxx
