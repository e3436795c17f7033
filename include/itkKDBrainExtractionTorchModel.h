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
#ifndef itkKDBrainExtractionTorchModel_h
#define itkKDBrainExtractionTorchModel_h

#include "KDBrainExtractionExport.h"
#include "itkKDBrainExtractionPreprocessing.h"
#include "itkObject.h"
#include "itkObjectFactory.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace itk
{
/** \class KDBrainExtractionTorchModel
 * \brief A UNet++ network with everything needed to apply it: architecture,
 * weights, preprocessing contract and role, read from one model file.
 *
 * The header is free of LibTorch, so that filters, tests and wrapping that
 * include it compile fast and without Torch headers; the network itself lives
 * behind a private implementation in the module library.
 *
 * A model file holds a magic number, a format version, a text header
 * (role, architecture, preprocessing contract, provenance), the serialized
 * weights, and an FNV-1a 64-bit checksum of header and weights. Loading a
 * truncated, corrupted or foreign file is an ExceptionObject naming the file.
 *
 * One model may be shared by several filters: the weights are loaded once.
 *
 * \ingroup KDBrainExtraction
 */
class KDBrainExtraction_EXPORT KDBrainExtractionTorchModel : public Object
{
public:
  ITK_DISALLOW_COPY_AND_MOVE(KDBrainExtractionTorchModel);

  using Self = KDBrainExtractionTorchModel;
  using Superclass = Object;
  using Pointer = SmartPointer<Self>;
  using ConstPointer = SmartPointer<const Self>;

  itkNewMacro(Self);
  itkTypeMacro(KDBrainExtractionTorchModel, Object);

  /** Teacher: brain-only grayscale image. Student: brain mask. Refiner: the
   * fine stage, the brain probability of points near the student's boundary
   * at the input's resolution (KDBrainExtractionBoundaryRefinement). */
  enum class RoleEnum : uint8_t
  {
    Teacher,
    Student,
    Refiner
  };

  /** UNet++ configuration (Zhou et al. 2018). Level l has BaseWidth * 2^l
   * channels. A refiner's network is a multilayer perceptron instead: Depth
   * hidden layers of BaseWidth units, no normalisation, no dropout. */
  struct Architecture
  {
    unsigned int Depth{ 3 };
    unsigned int BaseWidth{ 8 };
    /** "batch", "instance" or "none". */
    std::string Normalization{ "batch" };
    double      Dropout{ 0.0 };
    /** Heads on every top-row node; their average is the output. */
    bool DeepSupervision{ false };
  };

  using Contract = KDBrainExtractionPreprocessing::Contract;
  using ProgressCallback = std::function<bool(double)>;

  static constexpr unsigned int FormatVersion = 1;

  /** Read a model file; throws an ExceptionObject naming the file and the problem. */
  void
  Load(const std::string & fileName);

  /** Write a model file (through a temporary name, renamed on success). */
  void
  Save(const std::string & fileName) const;

  /** A new network with random weights (for training, or tests). */
  void
  Initialize(RoleEnum role, const Architecture & architecture, const Contract & contract, unsigned int seed);

  /** Replace this model by the element-wise mean of the weights of \a models
   * (a uniform "model soup", Wortsman et al. 2022): networks fine-tuned from
   * one starting model with different seeds or sample mixes average into one
   * network, at the cost of one at inference, whose result does not hinge on
   * one seed (here it scored about as the mean of its runs, or better, on
   * scans unlike the training data). Models not fine-tuned from a shared
   * start do not average meaningfully. All must have one role, architecture
   * and preprocessing contract (else an ExceptionObject naming the first file
   * that differs); this model takes them, no file name or checksum, and the
   * metadata entry "average.models" listing their checksums. Batch-norm running
   * statistics are averaged too, which only approximates those of the
   * averaged weights: re-estimate them (kdbet train --steps 0 --initialize
   * FILE --bn-recalibration N). */
  void
  AverageWeightsOf(const std::vector<ConstPointer> & models);

  RoleEnum
  GetRole() const;
  static std::string
  RoleToString(RoleEnum role);
  const Architecture &
  GetArchitecture() const;
  const Contract &
  GetContract() const;
  std::string
  GetFileName() const;

  /** Free-form provenance (training data, command, steps, ...), saved with the model. */
  void
  SetMetadata(const std::string & key, const std::string & value);
  std::string
  GetMetadata(const std::string & key) const;
  const std::map<std::string, std::string> &
  GetAllMetadata() const;

  /** FNV-1a 64 checksum of header and weights, as 16 hexadecimal digits. */
  std::string
  GetChecksum() const;
  std::size_t
  GetNumberOfParameters() const;

  /** "cpu", "cuda", "cuda:N", or "" / "auto" for CUDA when present, else CPU.
   * Throws if CUDA is requested and not available. */
  void
  SetDevice(const std::string & device);
  std::string
  GetDevice() const;
  static bool
  IsCudaAvailable();

  /** Threads of LibTorch's intra-op pool (process-wide); 0 leaves it as it
   * is. Throws above MaximumNumberOfThreads. */
  static void
                                SetNumberOfThreads(unsigned int threads);
  static constexpr unsigned int MaximumNumberOfThreads = 1024;
  static unsigned int
  GetNumberOfThreads();

  /** Process-wide: keep memory freed by the C library's malloc in the process
   * instead of returning it to the system. LibTorch's CPU tensors are plain
   * malloc blocks, so each layer's 10-100 MB activations are otherwise mapped
   * and page-faulted in afresh; on virtual machines that made inference 3x and
   * training 2x slower. It also reserves 1.5 GB of address space (not memory)
   * in the heap marked for transparent huge pages, which halves the first
   * pass's page faults again. Applications (kdbet, the Python module) call it
   * once at start; a library leaves it to its application. No effect outside
   * glibc. */
  static void
  RetainFreedMemory();

  /** Run the network on a normalised working volume of \a size (x, y, z; x
   * fastest in memory) and write its output, of the same size, to \a output:
   * the brain probability for a student, the normalised brain-only image for
   * a teacher. \a progress is called between network stages with the
   * fraction done; returning false aborts with ProcessAborted. With
   * \a mirrorLeftRight the network also runs on the volume mirrored along x
   * (left-right on the working grid, which is LPS-aligned) and the two
   * outputs, the second mirrored back, are averaged: test-time augmentation
   * as in HD-BET, at twice the network's time. Only x: training mirrors heads
   * along x at random, and along no other axis, so both passes see inputs the
   * network learned. \a output may be \a input: the input is read whole
   * before the output is written. */
  void
  Predict(const float * input, const std::array<std::size_t, 3> & size, float * output,
          const ProgressCallback & progress = nullptr, bool mirrorLeftRight = false) const;

  /** A refiner's brain probabilities of \a numberOfPoints points from their
   * features (KDBrainExtractionBoundaryRefinement::NumberOfFeatures floats
   * per point, one point after another), written to \a probabilities. */
  void
  PredictBoundary(const float * features, std::size_t numberOfPoints, float * probabilities) const;

  /** Where the shipped models are looked for: $KDBET_MODEL_DIR when it is set
   * (and only there), else share/KDBrainExtraction/Models next to the folder
   * of the module's library (or of the executable it is linked into), as
   * install and build trees lay them out. */
  static std::string
  GetDefaultModelDirectory();

  /** The model shipped as default for \a role in GetDefaultModelDirectory();
   * empty if there is none. */
  static std::string
  FindDefaultModelFile(RoleEnum role);

  /** Private implementation, defined where LibTorch is available. */
  struct Implementation;
  Implementation &
  GetImplementation() const;

protected:
  KDBrainExtractionTorchModel();
  ~KDBrainExtractionTorchModel() override;
  void
  PrintSelf(std::ostream & os, Indent indent) const override;

private:
  std::unique_ptr<Implementation> m_Implementation;
};
} // end namespace itk

#endif // itkKDBrainExtractionTorchModel_h
