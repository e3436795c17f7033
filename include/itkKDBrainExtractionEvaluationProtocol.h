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
#ifndef itkKDBrainExtractionEvaluationProtocol_h
#define itkKDBrainExtractionEvaluationProtocol_h

#include "KDBrainExtractionTrainingExport.h"
#include "itkKDBrainExtractionTrainer.h"

#include <iosfwd>
#include <string>
#include <vector>

namespace itk
{
/** \class KDBrainExtractionEvaluationProtocol
 * \brief The paper's experiment: repeated random subject-level splits; per
 * split a teacher, the plain UNet++ (a = 0) and the distilled students are
 * trained on the training subjects and evaluated on the held-out ones.
 *
 * Students are evaluated through KDStudentMaskFilter on the original images
 * (Dice, sensitivity, specificity, HD95 against the reference masks), the
 * teacher through KDTeacherImageFilter (MAE, PSNR, SSIM against the
 * reference brain-only image, both in the normalised [0, 1] units of the
 * percentile window). Models already present in the output folder are
 * reused, so an interrupted run continues where it stopped, and a split whose
 * evaluations are stored (split-N/evaluations.csv) is not run again, even
 * without its model files.
 *
 * Writes OutputDirectory/report.json and report.md.
 *
 * \ingroup KDBrainExtraction
 */
class KDBrainExtractionTraining_EXPORT KDBrainExtractionEvaluationProtocol
{
public:
  struct StudentVariant
  {
    std::string Name;
    double      DistillationWeight{ 0.0 };
    std::string DistillationMode{ "image" };
  };

  struct Options
  {
    KDBrainExtractionTrainer::Options Teacher;
    KDBrainExtractionTrainer::Options Student;
    /** Default: the plain UNet++, the paper's distillation and the soft-mask one. */
    std::vector<StudentVariant> Variants{ { "unetpp-baseline", 0.0, "image" },
                                          { "kd-image", 0.3, "image" },
                                          { "kd-soft-mask", 0.3, "soft-mask" } };
    unsigned int                NumberOfSplits{ 5 };
    double                      TrainingFraction{ 0.8 };
    unsigned int                Seed{ 1 };
    std::string                 OutputDirectory;
  };

  /** Runs the protocol; returns the path of report.md. */
  static std::string
  Run(const std::vector<KDBrainExtractionTrainer::Case> & cases, const Options & options, std::ostream & log);
};
} // end namespace itk

#endif // itkKDBrainExtractionEvaluationProtocol_h
