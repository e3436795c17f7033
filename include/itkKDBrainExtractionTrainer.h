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
#ifndef itkKDBrainExtractionTrainer_h
#define itkKDBrainExtractionTrainer_h

#include "KDBrainExtractionTrainingExport.h"
#include "itkKDBrainExtractionTorchModel.h"

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace itk
{
/** \class KDBrainExtractionTrainer
 * \brief Trains a teacher (brain-only image) or a student (brain mask, with
 * knowledge distillation from a teacher) on a manifest of head volumes.
 *
 * Volumes go through KDBrainExtractionPreprocessing, the same mapping that
 * the filters apply at inference. The data order and augmentation of step k
 * are functions of the seed and k alone, so a run resumed from a checkpoint
 * sees exactly the batches an uninterrupted run would have seen.
 *
 * Student loss: (1 - a) L_seg + a L_distill, with L_seg the hybrid loss
 * (MSE + (1 - SSIM) + (1 - Dice)) against the reference mask, and L_distill
 * the MSE between the student's probability and the teacher's output
 * ("image", as in the paper) or the teacher's soft brain mask ("soft-mask":
 * teacher output divided by the input intensity, clipped to [0, 1]).
 * a = 0 trains the plain UNet++ baseline.
 *
 * With SyntheticFraction > 0, cases that have a label map also train on
 * synthetic T1w-, T2w-, PDw-like and random contrasts painted from their
 * tissue classes, so that one model serves contrasts without real training
 * data (as SynthStrip does).
 *
 * \ingroup KDBrainExtraction
 */
class KDBrainExtractionTraining_EXPORT KDBrainExtractionTrainer
{
public:
  /** A training or validation case. A case with a label map but no image
   * and no mask is a whole-head label map in FreeSurfer codes (another
   * subject's anatomy with no scan, as SynthSeg's training maps): its brain
   * mask and tissue classes come from KDBrainExtractionWholeHeadLabels, and
   * every sample of it is painted in a synthetic contrast. */
  struct Case
  {
    std::string Subject;
    std::string Image;
    std::string Mask;
    std::string Labels;
    std::string Modality;
  };

  /** What Train reports after each step: the application draws progress
   * from it (the library neither draws nor asks whether it writes to a
   * terminal). */
  struct StepReport
  {
    KDBrainExtractionTorchModel::RoleEnum Role;
    uint64_t                              Step;
    uint64_t                              NumberOfSteps;
    double                                Loss;
    double                                StepsPerSecond;
    double                                SecondsLeft;
  };
  using StepObserver = std::function<void(const StepReport &)>;

  struct Options
  {
    KDBrainExtractionTorchModel::RoleEnum     Role{ KDBrainExtractionTorchModel::RoleEnum::Student };
    KDBrainExtractionTorchModel::Architecture NetworkArchitecture;
    KDBrainExtractionTorchModel::Contract     PreprocessingContract;
    std::string                               TeacherModelFile;
    double                                    DistillationWeight{ 0.3 };
    /** "image" (the paper's) or "soft-mask". */
    std::string  DistillationMode{ "image" };
    unsigned int NumberOfSteps{ 1000 };
    unsigned int BatchSize{ 4 };
    /** Cubic training patches of this many working voxels; 0 = whole volumes. */
    unsigned int PatchSize{ 64 };
    double       LearningRate{ 1e-3 };
    double       WeightDecay{ 1e-5 };
    bool         Augment{ true };
    /** Augmentation's resolution loss: in half of the degraded samples all
     * axes are coarsened alike, by a factor drawn in [1, this] (slice profile,
     * sampling at the coarse spacing, interpolation back). The default covers
     * partial volume and regridding; larger factors teach heavily smoothed
     * inputs (templates, low-resolution or motion-blurred scans). */
    double       MaximumIsotropicCoarsening{ 1.6 };
    unsigned int Seed{ 1 };
    std::string  Device{ "auto" };
    unsigned int NumberOfThreads{ 0 };
    /** CPU threads that prepare training samples (synthesis, augmentation)
     * in parallel and one step ahead of the network; the batches are the same
     * for any number. 0 = in turn with the network; -1 = automatic: 0 on the
     * CPU, the batch size (at most all cores but one) on a GPU. */
    int NumberOfLoaderThreads{ -1 };
    /** Checkpoint file: written every CheckpointInterval steps and resumed from if present. */
    std::string  CheckpointFile;
    unsigned int CheckpointInterval{ 100 };
    /** JSON lines, one per epoch (one pass over the training cases). */
    std::string LogFile;
    /** Cases whose Dice (student) or MAE (teacher) is reported at each epoch end. */
    std::vector<Case> ValidationCases;
    /** Stop after this many seconds (checkpointing first); 0 = no limit. */
    double TimeLimitSeconds{ 0.0 };
    /** Share of samples, of cases with a label map, whose image is replaced by
     * one synthesised from the case's tissue classes
     * (HeadTissueClassImageFilter, HeadContrastSynthesisImageFilter); 0 = real
     * images only. The teacher's target for such a sample is the synthetic
     * image times the mask. */
    double SyntheticFraction{ 0.0 };
    /** Contrast families of the synthetic images, drawn with equal chance:
     * "t1w", "t2w", "pdw", "random". */
    std::vector<std::string> SyntheticContrasts{ "t1w", "t2w", "pdw", "random" };
    /** Share of synthetic samples whose anatomy is aged first (on the
     * working grid): cortex at the brain's outer surface turned into the CSF
     * around it (the brain mask shrinks with it), cortex along the sulci into
     * sulcal CSF and white matter around the ventricles into ventricle, each
     * voxel with a probability drawn per sample. Wide CSF spaces of older
     * heads, which the training subjects rarely show. 0 = off. */
    double AtrophyFraction{ 0.0 };
    /** Share of samples whose field of view is cut by a plane across the
     * superior-inferior or anterior-posterior axis, anywhere from outside the
     * brain to 24 mm into it (image and mask zero beyond it): necks, vertices
     * and faces outside the scan. 0 = off. */
    double FieldOfViewCropFraction{ 0.0 };
    /** Largest displacement (mm) of a random smooth nonlinear deformation
     * applied to half of the augmented samples (a 5x5x5 control grid of
     * uniform displacements, interpolated); 0 = off. */
    double MaximumDeformation{ 0.0 };
    /** Largest slice thickness of the augmentation's thick-slice loss, in
     * working voxels (3 = 6 mm on the 2 mm grid). */
    double MaximumSliceThicknessFactor{ 3.0 };
    /** Share of the other samples (real images) whose normalised intensities
     * pass through a random curve: piecewise linear between nodes at 0, 0.2,
     * ..., 1, air (0) kept at 0 and every other node drawn in [0, 1]. Random
     * contrasts on real anatomy: unlike images painted from label maps, they
     * keep the scan's own partial volume of sulcal fluid, vessels and dura at
     * the brain's edge. The teacher's target is the remapped image times the
     * mask. 0 = off. */
    double IntensityRemappingFraction{ 0.0 };
    /** Weights to start from (fine-tuning): a model file of the same role and
     * architecture. Empty: random initialisation. A checkpoint, if present,
     * takes precedence. */
    std::string InitialModelFile;
    /** After the last step, replace the batch-norm running statistics (moving
     * averages dominated by the last few batches) by plain averages over this
     * many further training batches; forward passes only. 0 = keep the moving
     * averages. With NumberOfSteps 0 and an initial model, this re-estimates
     * the statistics of an already trained model. */
    unsigned int BatchNormRecalibrationBatches{ 0 };
    /** Return the mean of the weights after each of the last this many steps
     * (stochastic weight averaging: a flatter solution, which tends to hold
     * better on scans unlike the training data) instead of the last step's;
     * 0 = the last step's. The batch-norm statistics then belong to no model
     * that was trained: re-estimate them with BatchNormRecalibrationBatches. */
    unsigned int WeightAveragingSteps{ 0 };
    /** Called after every step. Unset: a progress line goes to the log every
     * 30 s and after the last step. */
    StepObserver StepCallback;
  };

  /** The fine stage's refiner (KDBrainExtractionBoundaryRefinement): trained
   * on heads painted from whole-head label maps at their own resolution
   * (1 mm), whose masks are exact there. Each head goes through the coarse
   * student as at inference; points drawn from the band around its coarse
   * boundary, with their features and their label in the exact mask, are
   * gathered once, then the refiner learns them by binary cross-entropy. */
  struct RefinerOptions
  {
    /** The student whose coarse result the refiner refines (required). */
    std::string CoarseModelFile;
    /** Depth hidden layers of BaseWidth units. */
    KDBrainExtractionTorchModel::Architecture NetworkArchitecture{ 2, 48, "none", 0.0, false };
    /** Spacing (mm) of the fine grid: the label maps' own, 1 mm, below which
     * nothing here could teach the refiner. */
    double       FineSpacing{ 1.0 };
    unsigned int HeadsPerLabelMap{ 8 };
    unsigned int PointsPerHead{ 20000 };
    /** Contrast families of the painted heads, drawn with equal chance. */
    std::vector<std::string> SyntheticContrasts{ "t1w", "t2w", "pdw", "flair", "random" };
    /** Largest slice thickness of the painting's thick-slice loss, in the
     * maps' voxels (5: 5 mm slices, as clinical scans have). */
    double       MaximumSliceThicknessFactor{ 5.0 };
    unsigned int NumberOfSteps{ 4000 };
    /** Points per step. */
    unsigned int BatchSize{ 4096 };
    double       LearningRate{ 1e-3 };
    double       WeightDecay{ 1e-5 };
    unsigned int Seed{ 1 };
    std::string  Device{ "auto" };
    unsigned int NumberOfThreads{ 0 };
    /** JSON lines: one per painted head, one per 500 steps. */
    std::string LogFile;
    /** Label maps of other subjects, one head per contrast family each, on
     * whose band points the error rates of the coarse result and of the
     * refiner are reported. */
    std::vector<Case> ValidationCases;
  };

  /** Train a refiner on whole-head label maps (cases with Labels only);
   * progress lines go to \a log. */
  static KDBrainExtractionTorchModel::Pointer
  TrainBoundaryRefiner(const std::vector<Case> & labelMaps, const RefinerOptions & options, std::ostream & log);

  /** Rows of a CSV with a header naming the columns. The image column is
   * "image" or "t1", the mask column "mask" or "brainmask", optional "labels"
   * or "dlmuse", "modality" and "subject". Relative paths are taken relative
   * to the manifest's folder. The shared IXI cases.csv reads as it is. */
  static std::vector<Case>
  ReadManifest(const std::string & fileName);

  /** Train on \a cases; progress lines go to \a log. Returns the trained
   * model, or nullptr if the time limit stopped training early (the
   * checkpoint holds the state). */
  static KDBrainExtractionTorchModel::Pointer
  Train(const std::vector<Case> & cases, const Options & options, std::ostream & log);
};
} // end namespace itk

#endif // itkKDBrainExtractionTrainer_h
